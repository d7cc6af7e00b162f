"""The synthetic-weight rule reproduces the kit's per-key checksums for all three models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hierspeech.testing.synthetic_weights import rule_value

KIT_FILTER = torch.tensor(
    [
        0.0020289646927267313, 0.009389465674757957, -0.0255434587597847, -0.057657383382320404,
        0.12857258319854736, 0.44320979714393616, 0.44320979714393616, 0.12857258319854736,
        -0.057657383382320404, -0.0255434587597847, 0.009389465674757957, 0.0020289646927267313,
    ],
    dtype=torch.float32,
).view(1, 1, 12)  # fmt: skip

DTYPES = {"float32": torch.float32, "int64": torch.int64}


@pytest.mark.parametrize("model", ["synthesizer", "ttv", "denoiser_mpnet"])
def test_rule_matches_kit_checksums(reference_dir, model: str) -> None:
    manifest = json.loads((reference_dir / "manifests" / f"params_{model}.json").read_text())["state_dict"]
    checksums = json.loads(
        (reference_dir / "golden" / "synthetic" / "weight_rule_checksums.json").read_text()
    )[model]
    assert set(manifest) == set(checksums)
    for key, entry in manifest.items():
        current = KIT_FILTER if key.endswith(".filter") else None
        value = rule_value(key, entry["shape"], DTYPES[entry["dtype"]], current).to(torch.float64)
        expected = checksums[key]
        flat = value.flatten()
        assert np.isclose(flat.sum().item(), expected["sum"], rtol=1e-9, atol=1e-9), key
        assert np.isclose(flat.abs().sum().item(), expected["abs_sum"], rtol=1e-9, atol=1e-9), key
        assert flat[:3].tolist() == pytest.approx(expected["first"], abs=0), key
