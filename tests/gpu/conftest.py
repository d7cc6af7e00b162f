"""Fixtures of the `gpu` tests (run by bench/device_check.sh): the device, float32 kernels, a
recorder of measured differences for the device check's table, and the tiny-model kit.

Every test module here sets `pytestmark = pytest.mark.gpu`; the root conftest skips them, with the reason, where CUDA is not
visible. `HSP_GPU_TEST_DEVICE=cpu` rehearses them on CPU (the same code paths, CPU against CPU).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import GPU_TEST_DEVICE_ENV

MEASUREMENTS_ENV = "HSP_DEVICE_CHECK_MEASUREMENTS"
"""A JSON file the session writes its measurements to (bench/device_table.py reads it)."""


@pytest.fixture(scope="session")
def device() -> str:
    return os.environ.get(GPU_TEST_DEVICE_ENV, "cuda")


@pytest.fixture(autouse=True)
def fp32_kernels():
    """TF32 off for the duration of a test: the stated CUDA tolerances are for float32 kernels
    (torch enables TF32 for cuDNN convolutions by default on Ampere and newer)."""
    import torch

    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="session")
def record():
    """record(check, batch, measured, tolerance): one measured maximum difference for the table."""
    rows: list[dict] = []

    def add(check: str, batch: int, measured: float, tolerance) -> None:
        rows.append({"check": check, "batch": batch, "measured": measured, "max_abs": tolerance.max_abs,
                     "unit": tolerance.unit, "quantity": tolerance.quantity})

    yield add
    target = os.environ.get(MEASUREMENTS_ENV)
    if target:
        Path(target).write_text(json.dumps(rows, indent=1))


@pytest.fixture(scope="session")
def kit(tmp_path_factory) -> dict[str, str]:
    from pipeline.testing.stages import write_model_kit

    return write_model_kit(tmp_path_factory.mktemp("gpu-kit"))
