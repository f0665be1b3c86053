"""xfq: consumption-voucher (消费券) campaigns end to end."""

__version__ = "0.1.0"
