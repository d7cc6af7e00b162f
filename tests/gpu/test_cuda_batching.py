"""The model stages' CUDA batching, which a CPU run does not show: the defaults on the device (rows
per call, Ray batch, denoiser windows per call, SpeechSR over a rate's rows, w2v forwards bounded by
seconds only), and VC's w2v features staying on the device for the synthesizer. Each test runs a batch
with one bad row and checks every good row against its CPU solo run (`CUDA_VS_CPU`).

The rehearsal (`HSP_GPU_TEST_DEVICE=cpu`) runs the same rows with the CPU defaults and expects those.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources
from pipeline.testing.stages import audio_item, vc_item
from pipeline.testing.tolerances import CUDA_VS_CPU, max_abs_diff

pytestmark = pytest.mark.gpu


def resources(device: str) -> Resources:
    return Resources(num_cpus=1.0, num_gpus=1.0 if device == "cuda" else 0.0)


def spy(monkeypatch: pytest.MonkeyPatch, owner, name: str) -> list[tuple[tuple, dict]]:
    """Record every call of `owner.<name>` as (args, kwargs); the call goes through."""
    calls: list[tuple[tuple, dict]] = []
    real = getattr(owner, name)

    def recorded(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, recorded)
    return calls


def compare_with_cpu_solo(key: str, make_stage: Callable[[str], object], rows: list[Item], make_rows: Callable[[], list[Item]],
                          bad: int, output: Callable[[Item], np.ndarray], device: str, record, batch: int) -> None:
    """`rows` ran on the device: row `bad` failed alone, every other row equals its CPU solo run."""
    assert rows[bad].failed and not rows[bad].deferred, rows[bad].error
    assert [row.error for i, row in enumerate(rows) if i != bad] == [None] * (len(rows) - 1)
    cpu = make_stage("cpu")
    tolerance = CUDA_VS_CPU[key]
    worst = 0.0
    for i, alone in enumerate(make_rows()):
        if i == bad:
            continue
        cpu([alone])
        assert alone.error is None
        worst = max(worst, max_abs_diff(output(rows[i]), output(alone), tolerance.unit))
    record(f"{key} on {device} (default batching) vs cpu alone", batch, worst, tolerance)
    assert worst <= tolerance.max_abs, f"{worst:.3g} > {tolerance.describe()}"


def _synthesis(kit, device: str, max_batch_items: int = 0):
    from pipeline.stages.synthesis_model import SynthesisModelStage
    from pipeline.stages.synthesis_params import ModelPaths

    models = ModelPaths(kit["synthesizer"], kit["ttv"], kit["denoiser"], {24000: kit["speechsr24000"]}, kit["w2v"], 1)
    stage = SynthesisModelStage(models, modes=("vc",), max_batch_items=max_batch_items, resources=resources(device))
    stage.setup()
    assert stage.device == device
    return stage


def _generated(item: Item) -> np.ndarray:
    return np.concatenate([item.data["raw"], [item.data["raw_rate"], item.data["prompt_peak"]]])


def test_vc_w2v_features_stay_on_the_device_for_the_synthesizer(kit, device, record, monkeypatch) -> None:
    """The features w2v returns live on the synthesizer's device (they used to come back to the host
    and go out again); rows 4 per call, row 1's F0 is malformed."""
    stage = _synthesis(kit, device, max_batch_items=4)
    extracted: list[list[str]] = []
    real = stage.w2v.extract

    def extract(*args, **kwargs):
        feats = real(*args, **kwargs)
        extracted.append([feat.device.type for feat in feats])
        return feats

    monkeypatch.setattr(stage.w2v, "extract", extract)
    seconds = [0.7, 0.9, 0.6, 0.8]

    def make_rows() -> list[Item]:
        return [vc_item(i, s, denoise_ratio=0.5, malformed_f0=i == 1) for i, s in enumerate(seconds)]

    rows = make_rows()
    stage(rows)
    assert extracted and all(kind == device for call in extracted for kind in call), extracted
    compare_with_cpu_solo("vc", lambda target: _synthesis(kit, target), rows, make_rows, 1, _generated, device, record, 4)


def test_synthesis_defaults_on_device_sort_rows_batch_speechsr_and_denoiser_windows(kit, device, record, monkeypatch) -> None:
    """`--max-batch-items 0` on the device: 8 rows per call, longest first, a Ray batch of 32; the
    prompts' MP-SENet windows 8 per call; SpeechSR over every 24 kHz row in one call. On CPU: one row
    per call, one window per call, SpeechSR per row. Row 3's F0 is malformed."""
    import hierspeech.denoiser as denoiser_module
    from pipeline.stages.model_batching import CALLS_PER_RAY_BATCH, CUDA_BATCH_ITEMS, CUDA_DENOISE_WINDOWS

    stage = _synthesis(kit, device)
    cuda = device == "cuda"
    per_call = CUDA_BATCH_ITEMS if cuda else 1
    assert stage.batch_size == (CALLS_PER_RAY_BATCH * CUDA_BATCH_ITEMS if cuda else 8)
    vc_calls = spy(monkeypatch, stage, "_run_vc")
    sr_calls = spy(monkeypatch, stage, "_super_resolve")
    denoise_calls = spy(monkeypatch, denoiser_module, "denoise")
    seconds = [0.5, 1.1, 0.6, 1.0, 0.7, 0.9, 0.55, 1.05, 0.65, 0.95, 0.75, 0.85]

    def make_rows() -> list[Item]:  # 4.5 s prompts: over the denoiser's 4 s chunk, so streamed in windows
        return [vc_item(i, s, denoise_ratio=0.5, prompt_seconds=4.5 if i % 6 == 0 else 0.8, output_sr=24000 if i % 2 else 16000,
                        malformed_f0=i == 3) for i, s in enumerate(seconds)]

    rows = make_rows()
    stage(rows)
    by_length = sorted(range(len(seconds)), key=lambda i: -seconds[i])
    first_calls = [[rows[i].id for i in by_length[at : at + per_call]] for at in range(0, len(seconds), per_call)]
    called = [[item.id for item in args[0]] for args, _ in vc_calls]
    assert called[0] == first_calls[0] and all(call in called for call in first_calls if rows[3].id not in call), called
    assert {kwargs["chunk_batch_size"] for _, kwargs in denoise_calls} == {CUDA_DENOISE_WINDOWS if cuda else 1}
    good_24k = [row.id for i, row in enumerate(rows) if i % 2 and i != 3]
    sr_ids = [[item.id for item in args[0]] for args, _ in sr_calls]
    assert sr_ids == ([good_24k] if cuda else [[row_id] for row_id in good_24k])
    compare_with_cpu_solo("vc", lambda target: _synthesis(kit, target), rows, make_rows, 3, _generated, device, record, per_call)


def test_w2v_forwards_on_device_are_bounded_by_batch_seconds_not_items(kit, device, record, monkeypatch) -> None:
    """Forty 0.4 s clips (16 s, far under the 120 s per forward): one forward on the device, where the
    item cap of 16 used to cut it in three, and a Ray batch of 60 to fill a forward; the CPU keeps 16.
    Row 5 holds a NaN and fails alone."""
    import hierspeech.w2v as w2v_module
    from pipeline.stages.model_batching import W2V_CPU_BATCH_ITEMS
    from pipeline.stages.model_features import ModelFeaturesStage, W2vOptions

    def make_stage(target: str) -> ModelFeaturesStage:
        stage = ModelFeaturesStage(w2v=W2vOptions(model=kit["w2v"], layer=1, dtype="float32"), resources=resources(target))
        stage.setup()
        return stage

    stage = make_stage(device)
    assert stage.batch_size == (60 if device == "cuda" else 16)
    forwards: list[int] = []
    real = w2v_module.length_buckets

    def sizes(*args, **kwargs):
        batches = real(*args, **kwargs)
        forwards.extend(len(batch) for batch in batches)
        return batches

    monkeypatch.setattr(w2v_module, "length_buckets", sizes)

    def make_rows() -> list[Item]:
        return [audio_item(i, 0.4 + 0.001 * i, nan=i == 5) for i in range(40)]

    rows = make_rows()
    stage(rows)
    assert forwards[0] == (40 if device == "cuda" else W2V_CPU_BATCH_ITEMS), forwards

    def features(item: Item) -> np.ndarray:
        return np.load(io.BytesIO(item.members["w2v.npy"]))

    compare_with_cpu_solo("w2v", make_stage, rows, make_rows, 5, features, device, record, forwards[0])


def test_denoise_stage_on_device_batches_rows_and_windows(kit, device, record, monkeypatch) -> None:
    """extract's denoiser at its defaults: 8 rows per call on the device (1 on CPU), longest first, the
    windows of inputs over 4 s 8 per call (1 on CPU); row 2 holds a NaN and fails alone."""
    import soundfile as sf

    import hierspeech.denoiser as denoiser_module
    from pipeline.stages.model_batching import CUDA_BATCH_ITEMS, CUDA_DENOISE_WINDOWS
    from pipeline.stages.model_features import ModelFeaturesStage

    def make_stage(target: str) -> ModelFeaturesStage:
        stage = ModelFeaturesStage(w2v=None, denoiser_ckpt=kit["denoiser"], resources=resources(target))
        stage.setup()
        return stage

    cuda = device == "cuda"
    stage = make_stage(device)
    assert stage.batch_size == (32 if cuda else 16)
    calls = spy(monkeypatch, stage, "_denoise")
    windows = spy(monkeypatch, denoiser_module, "denoise")
    seconds = [0.4, 4.6, 0.6, 4.5, 0.5, 0.45, 0.7, 0.55, 0.35, 0.65]

    def make_rows() -> list[Item]:
        return [audio_item(i, s, nan=i == 2) for i, s in enumerate(seconds)]

    rows = make_rows()
    stage(rows)
    per_call = CUDA_BATCH_ITEMS if cuda else 1
    by_length = [rows[i].id for i in sorted(range(len(seconds)), key=lambda i: -seconds[i])]
    assert [item.id for item in calls[0][0][0]] == by_length[:per_call]
    assert {kwargs["chunk_batch_size"] for _, kwargs in windows} == {CUDA_DENOISE_WINDOWS if cuda else 1}

    def denoised(item: Item) -> np.ndarray:
        return sf.read(io.BytesIO(item.members["denoised.flac"]), dtype="float32")[0]

    compare_with_cpu_solo("denoise", make_stage, rows, make_rows, 2, denoised, device, record, per_call)
