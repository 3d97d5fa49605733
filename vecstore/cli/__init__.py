"""The `vecstore` command line (`vecstore --help`)."""

from .main import main

__all__ = ["main"]
