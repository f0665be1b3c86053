"""Server-rendered pages: citizen wallet, merchant checkout, operators' dashboard."""

from xfq.web.pages import install, router

__all__ = ["install", "router"]
