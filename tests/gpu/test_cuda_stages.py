"""Every model stage on CUDA at batch 1 and 8 against its CPU result (`pipeline.testing.tolerances.CUDA_VS_CPU`).

The stages run directly (no Ray): w2v and the denoiser of `extract`, VC and TTS synthesis (with
prompt denoising and SpeechSR-24k), and `upsample`'s SpeechSR-48k with the released weights. The
CPU reference runs each row alone; the device runs them one per call, then eight per call.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources
from pipeline.testing.stages import audio_item, tts_item, vc_item
from pipeline.testing.tolerances import CUDA_VS_CPU, max_abs_diff

pytestmark = pytest.mark.gpu

ROWS = 8
BATCHES = (1, 8)


def resources(device: str) -> Resources:
    return Resources(num_cpus=1.0, num_gpus=1.0 if device == "cuda" else 0.0)


def run_rows(make_stage: Callable[[Resources, int], object], device: str, batch: int, rows: list[Item], per_call: bool) -> list[Item]:
    """Build the stage for `device` and `batch`, set it up, run `rows` (one call per row if `per_call`)."""
    stage = make_stage(resources(device), batch)
    stage.setup()
    assert stage.device == device
    if per_call:
        for row in rows:
            stage([row])
    else:
        stage(rows)
    assert [row.error for row in rows] == [None] * len(rows)
    return rows


def check(key: str, make_stage, make_rows: Callable[[], list[Item]], output: Callable[[Item], np.ndarray],
          device: str, record, *, batch_knob: bool = True) -> None:
    """CPU rows alone vs `device` at batch 1 and 8; `batch_knob`: the stage's own batch size sets the
    batch (else: rows are handed one per call, or all together)."""
    reference = [output(row) for row in run_rows(make_stage, "cpu", 1, make_rows(), per_call=not batch_knob)]
    tolerance = CUDA_VS_CPU[key]
    failures = []
    for batch in BATCHES:
        rows = run_rows(make_stage, device, batch, make_rows(), per_call=not batch_knob and batch == 1)
        worst = max(max_abs_diff(output(row), ref, tolerance.unit) for row, ref in zip(rows, reference, strict=True))
        record(f"{key} on {device} vs cpu", batch, worst, tolerance)
        if worst > tolerance.max_abs:
            failures.append(f"batch {batch}: {worst:.3g} > {tolerance.describe()}")
    assert not failures, failures


def test_w2v_on_device_equals_cpu(kit, device, record) -> None:
    from pipeline.stages.model_features import ModelFeaturesStage, W2vOptions

    def make(res: Resources, batch: int):
        options = W2vOptions(model=kit["w2v"], layer=1, dtype="float32", max_batch_size=batch)
        return ModelFeaturesStage(w2v=options, resources=res)

    def features(item: Item) -> np.ndarray:
        return np.load(io.BytesIO(item.members["w2v.npy"]))

    check("w2v", make, lambda: [audio_item(i, 0.5 + 0.13 * i) for i in range(ROWS)], features, device, record)


def test_denoiser_on_device_equals_cpu(kit, device, record) -> None:
    import soundfile as sf

    from pipeline.stages.model_features import ModelFeaturesStage

    def make(res: Resources, batch: int):
        return ModelFeaturesStage(w2v=None, denoiser_ckpt=kit["denoiser"], denoise_batch_items=batch, resources=res)

    def denoised(item: Item) -> np.ndarray:
        return sf.read(io.BytesIO(item.members["denoised.flac"]), dtype="float32")[0]

    check("denoise", make, lambda: [audio_item(i, 0.3 + 0.05 * i) for i in range(ROWS)], denoised, device, record)


def _synthesis(kit, res: Resources, batch: int, modes: tuple[str, ...]):
    from pipeline.stages.synthesis_model import SynthesisModelStage
    from pipeline.stages.synthesis_params import ModelPaths

    models = ModelPaths(kit["synthesizer"], kit["ttv"], kit["denoiser"], {24000: kit["speechsr24000"]}, kit["w2v"], 1)
    return SynthesisModelStage(models, modes=modes, max_batch_items=batch, resources=res)


def _generated(item: Item) -> np.ndarray:
    return item.data["raw"]


def test_vc_synthesis_on_device_equals_cpu(kit, device, record) -> None:
    def rows() -> list[Item]:
        return [vc_item(i, 0.6 + 0.1 * i, denoise_ratio=0.5, output_sr=24000 if i % 2 else 16000) for i in range(ROWS)]

    check("vc", lambda res, batch: _synthesis(kit, res, batch, ("vc",)), rows, _generated, device, record)


def test_tts_synthesis_on_device_equals_cpu(kit, device, record) -> None:
    def rows() -> list[Item]:
        return [tts_item(i, 8 + 2 * i, output_sr=24000 if i % 2 else 16000) for i in range(ROWS)]

    check("tts", lambda res, batch: _synthesis(kit, res, batch, ("tts",)), rows, _generated, device, record)


def test_speechsr_on_device_equals_cpu(reference_dir: Path, device, record) -> None:
    from pipeline.stages.speechsr import SpeechSRStage

    checkpoint = str(reference_dir / "weights/speechsr48k/G_100000.pth")

    def make(res: Resources, batch: int):
        return SpeechSRStage("48k", checkpoint=checkpoint, resources=res)

    def upsampled(item: Item) -> np.ndarray:
        assert item.data["sample_rate"] == 48000
        return item.data["audio"]

    rows = lambda: [audio_item(i, 0.4 + 0.2 * i) for i in range(ROWS)]  # noqa: E731 - several windows per row
    check("speechsr", make, rows, upsampled, device, record, batch_knob=False)
