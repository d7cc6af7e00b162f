"""Loading official checkpoint files safely and strictly.

Upstream's loader copies keys one by one and silently keeps a freshly initialised tensor when a key
is missing. Here every mismatch (missing key, unexpected key, wrong shape) is named and loading
stops, so a wrong checkpoint can never produce plausible-sounding garbage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's keys or shapes do not match the model built from its config."""


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | Path, container_key: str | None = None) -> dict[str, torch.Tensor]:
    """Read a state dict from an official checkpoint file on CPU with `weights_only=True`.

    `container_key` selects the state dict inside a wrapper dict (SpeechSR: ``"model"``,
    MP-SENet: ``"generator"``); ``None`` means the file is a raw state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/foreign files
        raise CheckpointMismatchError(
            f"could not read checkpoint {path} with weights_only=True ({type(exc).__name__}: {exc}); "
            "is it an official HierSpeech++ checkpoint file and fully downloaded?"
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
            f"checkpoint {path} does not hold a state dict (got {type(payload).__name__})"
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
    problems = describe_mismatch(model, state_dict)
    if problems:
        raise CheckpointMismatchError(
            f"{source} does not match {type(model).__name__} built from its config:\n  "
            + "\n  ".join(problems)
            + "\nCheck that the config.json belongs to this checkpoint."
        )
    model.load_state_dict(state_dict, strict=True)
