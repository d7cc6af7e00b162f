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
