"""Checks on the driver, before Ray starts: every checkpoint, model and F0 back end a job's actors will load.

Without them a wrong file (another model's weights, a truncated download, a pickle that
`weights_only=True` refuses) stops the job only when the first actor loads it, 10-15 s in and
after Ray and the other stages started. Each check builds the model on the meta device and maps
the file (`hierspeech.checkpoint.check_checkpoint`): about a second, whatever the size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.errors import ConfigError, ModelError


class CheckpointError(ModelError):
    """A checkpoint given to a job cannot be loaded by the model it is meant for."""


class WeightsUnavailableError(ModelError):
    """The official weights a job needs are neither given, nor in $HSP_WEIGHTS_DIR, nor downloadable."""


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


def check_f0_backend(name: str) -> None:
    """Fail on the driver, before Ray starts, when the F0 backend cannot be loaded."""
    from hierspeech.f0 import F0BackendUnavailableError, get_backend

    try:
        get_backend(name)
    except F0BackendUnavailableError as exc:
        raise ConfigError(str(exc)) from exc


def check_w2v_model(name: str, layer: int) -> None:
    """Fail on the driver when the w2v model's config cannot be found or is too shallow."""
    import os

    from transformers import Wav2Vec2Config

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}
    try:
        config = Wav2Vec2Config.from_pretrained(name, local_files_only=offline)
    except Exception as exc:  # OSError, HTTP errors, bad JSON: all mean "cannot use this model"
        raise ConfigError(f"w2v model {name!r} cannot be loaded ({type(exc).__name__}: {exc}); pass a hub id or a local folder with config.json") from exc
    if config.num_hidden_layers < layer:
        raise ConfigError(f"w2v model {name!r} has {config.num_hidden_layers} layers; hidden_states[{layer}] needs {layer}")
