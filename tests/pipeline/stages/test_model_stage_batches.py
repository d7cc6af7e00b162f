"""Every model stage at batch > 1 with one bad row: the batch splits in halves, only the bad row fails,
and every other row's output equals its solo run (tolerances: `pipeline.testing.tolerances.BATCH_VS_ALONE`).

The stages run directly (no Ray), as their actors call them: `setup()`, then `stage(items)`. Tiny
random-weight models (hierspeech.testing) stand in for the released ones, except SpeechSR, which
is the released 48 kHz checkpoint from the reference kit. Each bad row fails only after part of
its batch was computed, which is where a batch function that writes to its items early breaks
the retry of the good rows.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources
from pipeline.testing.stages import audio_item, tts_item, vc_item, write_model_kit
from pipeline.testing.tolerances import BATCH_VS_ALONE, max_abs_diff

CPU = Resources(num_cpus=1.0, num_gpus=0.0)


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> dict[str, str]:
    torch.set_num_threads(1)
    return write_model_kit(tmp_path_factory.mktemp("model-kit"))


def record_calls(monkeypatch: pytest.MonkeyPatch, stage, method: str) -> list[list[str]]:
    """The ids of every call of `stage.<method>` (a batch function), in order."""
    calls: list[list[str]] = []
    original = getattr(stage, method)

    def recorded(items: list[Item]) -> None:
        calls.append([item.id for item in items])
        original(items)

    monkeypatch.setattr(stage, method, recorded)
    return calls


def check_rows_equal_solo_runs(stage, make_rows: Callable[[], list[Item]], bad: int, output: Callable[[Item], np.ndarray], key: str) -> None:
    """Run the rows together, then each good row alone; outputs must agree within BATCH_VS_ALONE[key]."""
    together = make_rows()
    stage(together)
    assert together[bad].failed and not together[bad].deferred, together[bad].error
    assert [item.error for i, item in enumerate(together) if i != bad] == [None] * (len(together) - 1)
    tolerance = BATCH_VS_ALONE[key]
    for i, alone in enumerate(make_rows()):
        if i == bad:
            continue
        stage([alone])
        assert alone.error is None
        diff = max_abs_diff(output(alone), output(together[i]), tolerance.unit)
        assert diff <= tolerance.max_abs, f"{alone.id}: {diff} > {tolerance.describe()}"


def npy(item: Item, member: str) -> np.ndarray:
    return np.load(io.BytesIO(item.members[member]))


def test_w2v_rows_of_a_failed_batch_equal_their_solo_runs(kit, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.stages.model_features import ModelFeaturesStage, W2vOptions

    stage = ModelFeaturesStage(w2v=W2vOptions(model=kit["w2v"], layer=1, dtype="float32", max_batch_size=4), resources=CPU)
    stage.setup()
    calls = record_calls(monkeypatch, stage, "_extract_w2v")

    def make_rows() -> list[Item]:  # row 2's features come out NaN: the stage fails it after the forward
        return [audio_item(i, seconds, nan=i == 2) for i, seconds in enumerate([0.5, 0.77, 0.6, 1.0, 0.3])]

    check_rows_equal_solo_runs(stage, make_rows, 2, lambda item: npy(item, "w2v.npy"), "w2v")
    assert calls[:5] == [["row0", "row1", "row2", "row3", "row4"], ["row0", "row1", "row2"], ["row0", "row1"], ["row2"], ["row3", "row4"]]


def test_denoised_rows_of_a_failed_batch_equal_their_solo_runs(kit, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.stages.model_features import ModelFeaturesStage

    stage = ModelFeaturesStage(w2v=None, denoiser_ckpt=kit["denoiser"], denoise_batch_items=4, resources=CPU)
    stage.setup()
    calls = record_calls(monkeypatch, stage, "_denoise")

    def make_rows() -> list[Item]:
        return [audio_item(i, seconds, nan=i == 2) for i, seconds in enumerate([0.3, 0.35, 0.4, 0.45, 0.5])]

    def denoised(item: Item) -> np.ndarray:
        return sf.read(io.BytesIO(item.members["denoised.flac"]), dtype="float32")[0]

    check_rows_equal_solo_runs(stage, make_rows, 2, denoised, "denoise")
    # four rows per call, sorted by length (longest first); the shortest row is alone by the batch size, not by a retry
    assert calls[:6] == [["row4", "row3", "row2", "row1"], ["row4", "row3"], ["row2", "row1"], ["row2"], ["row1"], ["row0"]]


@pytest.fixture(scope="module")
def synthesis_stage(kit):
    from pipeline.stages.synthesis_model import SynthesisModelStage
    from pipeline.stages.synthesis_params import ModelPaths

    models = ModelPaths(kit["synthesizer"], kit["ttv"], kit["denoiser"], {24000: kit["speechsr24000"]}, kit["w2v"], 1)
    # several SpeechSR windows per call: 4096-sample windows, three per call
    stage = SynthesisModelStage(models, modes=("vc", "tts"), max_batch_items=4, speechsr_window=4096,
                                speechsr_windows_per_call=3, resources=CPU)
    stage.setup()
    return stage


def generated(item: Item) -> np.ndarray:
    return np.concatenate([item.data["raw"], [item.data["raw_rate"], item.data["prompt_peak"]]])


def test_vc_rows_of_a_failed_batch_equal_their_solo_runs(synthesis_stage, monkeypatch: pytest.MonkeyPatch) -> None:
    """VC with prompt denoising and SpeechSR-24k; row 2's F0 contour is malformed (found while the batch
    is assembled, after rows 0 and 1 were read)."""
    vc_calls = record_calls(monkeypatch, synthesis_stage, "_run_vc")
    sr_calls = record_calls(monkeypatch, synthesis_stage, "_super_resolve")

    def make_rows() -> list[Item]:
        return [vc_item(i, seconds, denoise_ratio=0.5, output_sr=16000 if i == 3 else 24000, malformed_f0=i == 2)
                for i, seconds in enumerate([0.8, 0.6, 0.7, 0.9])]

    check_rows_equal_solo_runs(synthesis_stage, make_rows, 2, generated, "vc")
    assert vc_calls[:5] == [["vc3", "vc0", "vc2", "vc1"], ["vc3", "vc0"], ["vc2", "vc1"], ["vc2"], ["vc1"]]  # longest first
    assert sr_calls[0] == ["vc0", "vc1"]  # the 24 kHz rows that passed, super-resolved together


def test_tts_rows_of_a_failed_batch_equal_their_solo_runs(synthesis_stage, monkeypatch: pytest.MonkeyPatch) -> None:
    """TTS with SpeechSR-24k; row 1 holds a token id outside the vocabulary."""
    tts_calls = record_calls(monkeypatch, synthesis_stage, "_run_tts")
    sr_calls = record_calls(monkeypatch, synthesis_stage, "_super_resolve")

    def make_rows() -> list[Item]:
        return [tts_item(i, phonemes, output_sr=24000 if i != 3 else 16000, unknown_token=i == 1)
                for i, phonemes in enumerate([10, 14, 8, 20])]

    check_rows_equal_solo_runs(synthesis_stage, make_rows, 1, generated, "tts")
    assert tts_calls[:5] == [["tts3", "tts1", "tts0", "tts2"], ["tts3", "tts1"], ["tts3"], ["tts1"], ["tts0", "tts2"]]  # most tokens first
    assert sr_calls[0] == ["tts0", "tts2"]


def test_synthesis_sorts_a_ray_batch_by_length_before_cutting_model_batches(synthesis_stage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight VC rows of interleaved lengths, four per model call: the four longest share a call, then
    the four shortest (in input order they would pair 0.5 s with 1 s rows); row 4's F0 is malformed.
    Each row's output lands on its own item: every good row equals its solo run."""
    vc_calls = record_calls(monkeypatch, synthesis_stage, "_run_vc")
    seconds = [0.5, 1.0, 0.55, 0.95, 0.6, 0.9, 0.65, 0.85]

    def make_rows() -> list[Item]:
        return [vc_item(i, s, malformed_f0=i == 4) for i, s in enumerate(seconds)]

    check_rows_equal_solo_runs(synthesis_stage, make_rows, 4, generated, "vc")
    assert vc_calls[:5] == [["vc1", "vc3", "vc5", "vc7"], ["vc6", "vc4", "vc2", "vc0"], ["vc6", "vc4"], ["vc6"], ["vc4"]]
    assert vc_calls[5] == ["vc2", "vc0"]


def test_synthesis_super_resolves_every_row_of_a_rate_in_one_call(synthesis_stage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Six 24 kHz rows at four rows per synthesis call: SpeechSR still takes all six in one windowed
    call, not four and two. Row 2's SpeechSR call raises (injected: no real input makes the windowed
    call fail for one row), so the SpeechSR batch splits in halves and only row 2 fails."""
    import hierspeech.speechsr_batching as batching

    sr_calls = record_calls(monkeypatch, synthesis_stage, "_super_resolve")
    seconds = [0.6, 0.9, 0.77, 0.7, 0.8, 0.65]
    bad_samples = int(0.77 * 16000)  # a VC row's generated length is its source's
    real = batching.upsample_batch

    def fails_on_row_2(model, waves, **kwargs):
        if any(wave.shape[0] == bad_samples for wave in waves):
            raise RuntimeError("SpeechSR failed on row 2 (injected)")
        return real(model, waves, **kwargs)

    monkeypatch.setattr(batching, "upsample_batch", fails_on_row_2)

    def make_rows() -> list[Item]:
        return [vc_item(i, s, output_sr=24000) for i, s in enumerate(seconds)]

    check_rows_equal_solo_runs(synthesis_stage, make_rows, 2, generated, "vc")
    assert sr_calls[:5] == [["vc0", "vc1", "vc2", "vc3", "vc4", "vc5"], ["vc0", "vc1", "vc2"], ["vc0", "vc1"], ["vc2"], ["vc3", "vc4", "vc5"]]


def test_the_ray_batch_holds_several_model_calls_of_max_batch_items(kit) -> None:
    """`Stage.batch_size` is the Ray batch the runner asks for (a group's batch): it used to be 8 whatever
    `--max-batch-items` said, so a call never got more than 8 rows. It follows the resources the runner
    fitted (a GPU stage moved to CPU gets the CPU batch)."""
    from pipeline.engine.fusion import StageGroup
    from pipeline.stages.model_batching import CALLS_PER_RAY_BATCH, CUDA_BATCH_ITEMS
    from pipeline.stages.model_features import ModelFeaturesStage, W2vOptions
    from pipeline.stages.speechsr import SpeechSRStage
    from pipeline.stages.synthesis_model import SynthesisModelStage
    from pipeline.stages.synthesis_params import ModelPaths

    models = ModelPaths(kit["synthesizer"], w2v_model=kit["w2v"], w2v_layer=1)

    def synthesis(max_batch_items: int, gpus: float) -> SynthesisModelStage:
        return SynthesisModelStage(models, modes=("vc",), max_batch_items=max_batch_items, resources=Resources(num_gpus=gpus))

    assert synthesis(0, 0.0).batch_size == 8  # one row per call on CPU: the Ray batch as before
    assert synthesis(0, 1.0).batch_size == CALLS_PER_RAY_BATCH * CUDA_BATCH_ITEMS == 32
    for rows in (16, 64):
        stage = synthesis(rows, 1.0)
        assert StageGroup([stage]).batch_size == stage.input_rows_per_block == CALLS_PER_RAY_BATCH * rows
    gpu_stage = synthesis(0, 1.0)
    gpu_stage.resources.num_gpus = 0.0  # what fit_stage_resources does for --device cpu
    assert gpu_stage.batch_size == 8

    def features(gpus: float, **kwargs) -> ModelFeaturesStage:
        return ModelFeaturesStage(resources=Resources(num_gpus=gpus), **kwargs)

    assert features(0.0).batch_size == 16 and features(0.0, denoiser_ckpt="x").batch_size == 16
    assert features(1.0).batch_size == 60  # 120 s per forward, of 2 s clips
    assert features(1.0, w2v=W2vOptions(batch_seconds=240.0)).batch_size == 120
    assert features(1.0, w2v=None, denoiser_ckpt="x").batch_size == 32
    assert features(0.0, w2v=None, denoiser_ckpt="x", denoise_batch_items=8).batch_size == 32
    assert SpeechSRStage("48k", resources=Resources(num_gpus=0.0)).batch_size == 8
    assert SpeechSRStage("48k", resources=Resources(num_gpus=1.0)).batch_size == 32


def test_speechsr_rows_of_a_failed_batch_equal_their_solo_runs(reference_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The released SpeechSR-48k, three 16384-sample windows per call; row 2's output is not finite."""
    from pipeline.stages.speechsr import SpeechSRStage

    stage = SpeechSRStage("48k", checkpoint=str(reference_dir / "weights/speechsr48k/G_100000.pth"), window=16384,
                          batch_seconds=3 * 16384 / 48000, resources=CPU)
    stage.setup()
    assert stage.windows_per_call == 3
    calls = record_calls(monkeypatch, stage, "_run")

    def make_rows() -> list[Item]:
        return [audio_item(i, seconds, nan=i == 2) for i, seconds in enumerate([0.4, 0.5, 0.3, 0.45, 0.35])]

    def upsampled(item: Item) -> np.ndarray:
        assert item.data["sample_rate"] == 48000
        return item.data["audio"]

    check_rows_equal_solo_runs(stage, make_rows, 2, upsampled, "speechsr")
    assert calls[:5] == [["row0", "row1", "row2", "row3", "row4"], ["row0", "row1", "row2"], ["row0", "row1"], ["row2"], ["row3", "row4"]]


def test_an_out_of_memory_first_call_is_retried_in_halves_after_emptying_the_cache(reference_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real model stage whose first model call runs out of memory: two halves (no solo runs), the CUDA
    cache emptied once, every row done and equal to the run without the error."""
    import hierspeech.speechsr_batching as batching
    from pipeline.stages.speechsr import SpeechSRStage

    stage = SpeechSRStage("48k", checkpoint=str(reference_dir / "weights/speechsr48k/G_100000.pth"), resources=CPU)
    stage.setup()
    reference = [audio_item(i, 0.3 + 0.05 * i) for i in range(4)]
    stage(reference)

    real, sizes, emptied = batching.upsample_batch, [], []

    def first_call_out_of_memory(model, waves, **kwargs):
        sizes.append(len(waves))
        if len(sizes) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, waves, **kwargs)

    monkeypatch.setattr(batching, "upsample_batch", first_call_out_of_memory)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    items = [audio_item(i, 0.3 + 0.05 * i) for i in range(4)]
    stage(items)
    assert sizes == [4, 2, 2] and emptied == [1]
    assert [item.error for item in items] == [None] * 4
    for item, ref in zip(items, reference, strict=True):
        assert np.array_equal(item.data["audio"], ref.data["audio"])  # the same windows in the same calls
    counters = items[0].stage_metrics["speechsr"]
    assert (counters["batch_failures"], counters["splits"], counters["oom"]) == (1, 1, 1)
