"""The one error type of the native stack: its message names the server, what failed and what to do."""

from __future__ import annotations


class StackError(RuntimeError):
    """A server could not be installed, started, stopped or reached."""
