"""Loading official checkpoint files safely and strictly.

Upstream's loader copies keys one by one and silently keeps a freshly initialised tensor when a key
is missing. Here every mismatch (missing key, unexpected key, wrong shape) is named and loading
stops, so a wrong checkpoint can never produce plausible-sounding garbage.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn


class CheckpointMismatchError(RuntimeError):
    """A checkpoint cannot be read safely, or its keys or shapes do not match the model built from its config."""


ModelT = TypeVar("ModelT", bound=nn.Module)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _load_failure_reason(exc: BaseException) -> str:
    """One line out of torch.load's error: weights_only refusals name the refused global after a long preamble."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        detail = next((part for part in text.split(marker, 1)[1].split("\n\n") if part.strip()), "")
        text = "refused by weights_only: " + detail
    text = " ".join(text.split())
    first = re.split(r"(?<=[a-z0-9'\"])\. ", text, maxsplit=1)[0].rstrip(".")
    return f"{type(exc).__name__}: {first[:300]}"


def read_state_dict(path: str | Path, container_key: str | None = None, *, mmap: bool = False) -> dict[str, torch.Tensor]:
    """Read a state dict from an official checkpoint file on CPU with `weights_only=True`.

    `container_key` selects the state dict inside a wrapper dict (SpeechSR: ``"model"``,
    MP-SENet: ``"generator"``); ``None`` means the file is a raw state dict. `mmap` maps the file
    instead of reading it (zip-format files; others are read normally): for checks that only look at
    keys and shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if not (mmap and "mmap can only be used" in str(exc)):
                raise
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/foreign files
        raise CheckpointMismatchError(
            f"could not read checkpoint {path} with weights_only=True ({_load_failure_reason(exc)}); "
            "pass an official HierSpeech++ checkpoint file, fully downloaded (only tensors are ever unpickled)"
        ) from exc
    if container_key is not None:
        if not isinstance(payload, Mapping) or container_key not in payload:
            found = sorted(payload.keys())[:10] if isinstance(payload, Mapping) else type(payload).__name__
            raise CheckpointMismatchError(
                f"checkpoint {path} has no '{container_key}' entry (found: {found}); "
                "pass the file of the right model"
            )
        payload = payload[container_key]
    if not isinstance(payload, Mapping):
        raise CheckpointMismatchError(
            f"checkpoint {path} does not hold a state dict (got {type(payload).__name__}); pass the file of the right model"
        )
    return dict(payload)


def describe_mismatch(model: nn.Module, state_dict: Mapping[str, torch.Tensor], limit: int = 20) -> list[str]:
    """List every missing key, unexpected key and shape mismatch between a model and a state dict."""
    expected = model.state_dict()
    problems: list[str] = []
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong_shape)):
        if items:
            shown = ", ".join(items[:limit]) + (
                f", ... (+{len(items) - limit} more)" if len(items) > limit else ""
            )
            problems.append(f"{len(items)} {label}: {shown}")
    return problems


def load_state_dict_strict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """Copy `state_dict` into `model`, refusing any missing/unexpected key or shape mismatch."""
    _refuse_mismatch(model, state_dict, source)
    model.load_state_dict(state_dict, strict=True)


def _refuse_mismatch(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    problems = describe_mismatch(model, state_dict)
    if problems:
        raise CheckpointMismatchError(
            f"{source} does not match {type(model).__name__} built from its config: "
            + "; ".join(problems)
            + ". Check that the config.json belongs to this checkpoint."
        )


def build_and_load(build: Callable[[], ModelT], path: str | Path, container_key: str | None = None) -> ModelT:
    """`build()` a model, copy the checkpoint at `path` into it strictly, on CPU; returns it in eval mode.

    Inference mode is switched off meanwhile: a model built inside `torch.inference_mode()` would hold
    inference tensors, which later in-place updates and version checks (weight-norm fusing, the
    alias-free filter caches) refuse ("Inference tensors do not track version counter").
    """
    with torch.inference_mode(False):
        model = build()
        load_state_dict_strict(model, read_state_dict(path, container_key), source=str(path))
    return model.eval()


def check_checkpoint(build: Callable[[], nn.Module], path: str | Path, container_key: str | None = None) -> None:
    """Raise what `build_and_load` would raise, without building real weights: for a driver's check before work.

    The model is built on the meta device (shapes only) and the file is memory-mapped where its format
    allows, so checking a 400 MB checkpoint costs about a second and little memory.

    Raises:
        FileNotFoundError: no file at `path`.
        CheckpointMismatchError: unreadable with ``weights_only=True``, or keys/shapes do not match.
    """
    state_dict = read_state_dict(path, container_key, mmap=True)
    with torch.inference_mode(False), torch.device("meta"):
        model = build()
    _refuse_mismatch(model, state_dict, str(path))
