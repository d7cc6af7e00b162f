"""Shared fixtures: where the reference kit lives, and a guard so CI never silently skips fidelity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _reference_dir() -> Path:
    override = os.environ.get("HSP_REFERENCE_DIR")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The conformance kit (../shared/reference). Missing outside CI: skip; missing in CI: fail."""
    path = _reference_dir()
    if not (path / "README.md").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"reference kit not found at {path}; CI must run with ../shared beside the clone")
        pytest.skip(f"reference kit not found at {path} (set HSP_REFERENCE_DIR)")
    return path


GPU_TEST_DEVICE_ENV = "HSP_GPU_TEST_DEVICE"
"""`cuda` (default): `gpu` tests need CUDA; `cpu`: rehearse them on CPU (bench/device_check.sh --dry-run)."""


def gpu_skip_reason() -> str | None:
    """Why `gpu`-marked tests cannot run here, or None when they can."""
    if os.environ.get(GPU_TEST_DEVICE_ENV, "cuda") == "cpu":
        return None
    try:
        import torch
    except ImportError:
        return "needs a CUDA device: torch is not installed"
    if not torch.cuda.is_available():
        return ("needs a CUDA device: torch.cuda.is_available() is False here "
                f"(bench/device_check.sh runs these on a GPU; {GPU_TEST_DEVICE_ENV}=cpu rehearses them on CPU)")
    return None


def pytest_collection_modifyitems(config, items) -> None:
    """Skip `gpu`-marked tests, with the reason, where no CUDA device is visible."""
    marked = [item for item in items if item.get_closest_marker("gpu") is not None]
    reason = gpu_skip_reason() if marked else None
    if reason is not None:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))
