"""The score stage on CUDA at batch 1 and 8 against its CPU result: speaker similarity (the scorer a
GPU helps) within `SCORERS_CUDA_VS_CPU["speaker_sim"]`, the CPU-only metrics equal, no row lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources
from pipeline.scoring import ScoringConfig
from pipeline.stages.score_metrics import ScoreStage
from pipeline.testing.tolerances import SCORERS_CUDA_VS_CPU, max_abs_diff

pytestmark = pytest.mark.gpu

for _module in ("resemblyzer", "webrtcvad", "librosa"):  # the [score] extra; bench/device_prepare.sh does not ship it yet
    pytest.importorskip(_module, reason=f"speaker_sim needs {_module} (pip install '.[score]')")

ROWS = 8


def _rows(reference_dir: Path) -> list[Item]:
    from pipeline.io.audio import decode_audio

    waves = [decode_audio(str(reference_dir / "audio" / f"reference_{n}.wav")).samples for n in range(1, 5)]
    items = []
    for i in range(ROWS):
        wave, reference = waves[i % 4], waves[(i // 2) % 4]
        cut = wave[: wave.shape[0] - 1600 * (i % 3)]  # ragged lengths in one batch
        items.append(Item(f"r{i}", i, {}, data={"audio": cut, "sample_rate": 16000, "reference": reference[: reference.shape[0] // 2]}))
    return items


def _scores(device: str, batch: int, reference_dir: Path) -> list[dict]:
    stage = ScoreStage(ScoringConfig(metrics=("speaker_sim", "bandwidth")), resources=Resources(num_gpus=1.0 if device == "cuda" else 0.0))
    stage.batch_size = batch
    stage.setup()
    assert all(s.device == device for s in stage._scorers if s.gpu_helps)
    rows = _rows(reference_dir)
    for start in range(0, len(rows), batch):
        stage(rows[start : start + batch])
    assert not any(r.failed for r in rows)
    return [r.index for r in rows]


@pytest.mark.parametrize("batch", [1, ROWS])
def test_speaker_similarity_on_device_equals_cpu(reference_dir, device, record, batch) -> None:
    cpu = _scores("cpu", 1, reference_dir)
    on_device = _scores(device, batch, reference_dir)
    tolerance = SCORERS_CUDA_VS_CPU["speaker_sim"]
    worst = max_abs_diff([r["speaker_sim"] for r in on_device], [r["speaker_sim"] for r in cpu], tolerance.unit)
    record(f"speaker_sim on {device} vs cpu", batch, worst, tolerance)
    assert worst <= tolerance.max_abs
    assert np.array_equal([r["bandwidth_hz"] for r in on_device], [r["bandwidth_hz"] for r in cpu])
