"""The error base for problems a user can fix: the CLI prints them as one line, never as a traceback.

Each message says what happened and what to do (free disk space, pass another path, set an
environment variable). `hsp` maps `UserError` once, in its root group (`pipeline.cli.main`).
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment, with a one-line message saying what to do."""
