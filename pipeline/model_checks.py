"""Checks on the driver, before Ray starts: every checkpoint a job's actors will load.

Without them a wrong file (another model's weights, a truncated download, a pickle that
`weights_only=True` refuses) stops the job only when the first actor loads it, 10-15 s in and
after Ray and the other stages started. Each check builds the model on the meta device and maps
the file (`hierspeech.checkpoint.check_checkpoint`): about a second, whatever the size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.errors import UserError


class CheckpointError(UserError):
    """A checkpoint given to a job cannot be loaded by the model it is meant for."""


def check_checkpoints(job: str, checkpoints: Iterable[tuple[str, Any, str | None]]) -> None:
    """Check each (option, model class, path) once; the first that would not load raises `CheckpointError`.

    `model class` is a `hierspeech` model with `check_pretrained(path)` (its config.json beside the file).
    Entries whose path is None are skipped.
    """
    from hierspeech.checkpoint import CheckpointMismatchError

    for option, model, path in checkpoints:
        if not path:
            continue
        try:
            model.check_pretrained(path)
        except (CheckpointMismatchError, FileNotFoundError, ValueError, KeyError, TypeError) as exc:
            reason = " ".join(str(exc).split())
            raise CheckpointError(
                f"[{job}] {option} {path} cannot be loaded as a {model.__name__} checkpoint: {reason}"
            ) from exc
