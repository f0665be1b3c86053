"""The pure core: rules of campaigns, vouchers and checkout. Standard library only, no I/O."""
