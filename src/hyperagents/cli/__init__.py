"""The ``hyperagents`` command line."""

from __future__ import annotations

from hyperagents.cli._app import app, main

__all__ = ["app", "main"]
