"""acme: the example project's Python package."""

from .greeting import greet

__all__ = ["greet"]
