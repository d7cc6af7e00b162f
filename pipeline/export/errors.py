"""The one error an export raises for a user's mistake or a damaged output (mapped to one CLI line)."""

from __future__ import annotations

from pipeline.errors import PipelineError


class ExportError(PipelineError, ValueError):
    """The output cannot be exported as asked; the message says what was found and what to do."""
