"""Stage contracts: every registered job's stage list fits together; a broken one fails at build time
naming the stage and key; a stage given an item without its input fails that item, not the batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.engine.contracts import check_stage_list
from pipeline.engine.item import Item
from pipeline.engine.job import Job
from pipeline.engine.stage import Stage
from pipeline.errors import StageContractError
from pipeline.registry import JOBS

REFERENCE_WEIGHTS = Path(__file__).resolve().parents[4] / "shared" / "reference" / "weights"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    from hierspeech.testing.tiny_synthesis import write_tiny_checkpoints, write_tiny_w2v

    root = tmp_path_factory.mktemp("contracts")
    paths = write_tiny_checkpoints(root)
    paths["w2v"] = write_tiny_w2v(root)
    return paths


def _configs(models: dict[str, str]) -> dict[str, object]:
    """One config per registered job, every optional stage switched on."""
    from pipeline.augment import AugmentConfig, AugmentOptions
    from pipeline.extract import FEATURES, ExtractConfig
    from pipeline.prepare import PrepareConfig
    from pipeline.score import ScoreConfig
    from pipeline.scoring import ScoringConfig
    from pipeline.synthesize import SynthesizeConfig
    from pipeline.testing.probes import ProbeConfig
    from pipeline.upsample import UpsampleConfig

    def synthesis(mode: str | None, modes: tuple[str, ...]) -> SynthesizeConfig:
        return SynthesizeConfig(synthesizer=models["synthesizer"], ttv=models["ttv"], denoiser=models["denoiser"],
                                w2v_model=models["w2v"], w2v_layer=1, mode=mode, modes=modes,
                                scoring=ScoringConfig(metrics=("speaker_sim", "bandwidth")))  # --score: the stage reads the prompt

    return {
        "prepare": PrepareConfig(),
        "extract": ExtractConfig(features=tuple(FEATURES), denoiser_ckpt=models["denoiser"], w2v_model=models["w2v"], w2v_layer=1),
        "upsample": UpsampleConfig(sample_rate=24000, checkpoint=str(REFERENCE_WEIGHTS / "speechsr24k" / "G_340000.pth")),
        "synthesize_vc": synthesis("vc", ("vc",)),
        "synthesize_tts": synthesis("tts", ("tts",)),
        "augment": AugmentConfig(synthesis=synthesis(None, ("vc", "tts")), plan=AugmentOptions(mode="both")),
        "score": ScoreConfig(metrics=("dnsmos", "speaker_sim", "vad", "bandwidth")),
        "probe": ProbeConfig(num_gpus=0.0),
    }


def test_every_registered_jobs_stage_list_fits_together(models) -> None:
    if not REFERENCE_WEIGHTS.is_dir():
        pytest.skip("reference weights not found")
    configs = _configs(models)
    assert set(configs) == set(JOBS), "a registered job has no stage-list check here"
    for name, spec in JOBS.items():
        job = spec.build(configs[name])
        stages = job.stages()  # raises StageContractError on a broken list
        assert stages, name
        assert job.name == name


def test_a_stage_reading_a_key_nothing_wrote_fails_at_build_time() -> None:
    from pipeline.stages.decode import DecodeStage
    from pipeline.stages.encode import EncodeFlacStage

    check_stage_list("prepare", [DecodeStage(16000), EncodeFlacStage()], ["id", "audio"])
    with pytest.raises(StageContractError, match=r"stage 'encode_flac' reads item.data\['audio'\].*earlier stages: none"):
        check_stage_list("prepare", [EncodeFlacStage(), DecodeStage(16000)], ["id", "audio"])
    job = Job(name="broken", build_stages=lambda: [EncodeFlacStage()])
    with pytest.raises(StageContractError, match="job 'broken'"):
        job.stages()


def test_a_stage_reading_a_column_the_manifest_lacks_fails_at_build_time() -> None:
    from pipeline.stages.decode import DecodeStage

    with pytest.raises(StageContractError, match=r"stage 'decode' reads manifest column 'source_audio'"):
        check_stage_list("prepare", [DecodeStage(16000, column="source_audio")], ["id", "audio"])


def test_an_item_without_a_required_input_fails_naming_stage_and_key() -> None:
    class Double(Stage):
        name = "double"
        inputs = ("audio",)
        outputs = ("audio",)

        def process_item(self, item: Item) -> None:
            item.data["audio"] = item.data["audio"] * 2

    good = Item(id="a", row=0, fields={}, data={"audio": np.ones(3)})
    bad = Item(id="b", row=1, fields={})
    Double()([good, bad])
    assert good.error is None and good.data["audio"].tolist() == [2.0, 2.0, 2.0]
    assert bad.error is not None and bad.error.error == "StageContractError"
    assert "'double'" in bad.error.message and "item.data['audio']" in bad.error.message


def test_mode_dependent_inputs_are_required_per_row() -> None:
    from pipeline.stages.synthesis_model import SynthesisModelStage
    from pipeline.stages.vc_f0 import VcF0Stage

    vc = Item(id="v", row=0, fields={}, data={"mode": "vc", "params": {}, "prompt": np.zeros(1)})
    tts = Item(id="t", row=1, fields={}, data={"mode": "tts", "params": {}, "prompt": np.zeros(1)})
    assert set(SynthesisModelStage.required_inputs(SynthesisModelStage.__new__(SynthesisModelStage), vc)) >= {"source", "log_f0"}
    assert "tokens" in SynthesisModelStage.required_inputs(SynthesisModelStage.__new__(SynthesisModelStage), tts)
    f0 = VcF0Stage()
    f0([vc, tts])
    assert vc.error is not None and "item.data['source']" in vc.error.message
    assert tts.error is None  # TTS rows need no F0
