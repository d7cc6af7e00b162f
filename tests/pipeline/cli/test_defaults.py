"""Every job command's defaults are its config dataclass's: a config built from the options click
parses with nothing given equals the dataclass built with no arguments (one source of defaults)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest

from pipeline.cli import main
from pipeline.cli.options import RUN_OPTION_FIELDS
from pipeline.engine.job import RunOptions


def _parsed(path: tuple[str, ...], argv: list[str]) -> dict:
    """What click hands command `path` for `argv` (defaults filled in, types converted, callbacks run)."""
    command: click.Command = main
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    with command.make_context(" ".join(path), argv) as ctx:
        return dict(ctx.params)


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch) -> dict[str, str]:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    manifest = tmp_path / "m.parquet"
    manifest.write_bytes(b"")
    synthesizer = tmp_path / "hierspeechpp.pth"
    synthesizer.write_bytes(b"")
    return {"manifest": str(manifest), "synthesizer": str(synthesizer)}


def _job_options(params: dict, *also: str) -> dict:
    return {k: v for k, v in params.items() if k not in {"manifest_path", "input_spec", "output", *RUN_OPTION_FIELDS, *also}}


@pytest.mark.parametrize("path, config_path", [
    (("prepare",), "pipeline.prepare:PrepareConfig"),
    (("extract",), "pipeline.extract:ExtractConfig"),
    (("upsample",), "pipeline.upsample:UpsampleConfig"),
    (("probe",), "pipeline.testing.probes:ProbeConfig"),
])
def test_job_command_defaults_are_the_config_dataclass_defaults(inputs, path, config_path) -> None:
    import importlib

    module, name = config_path.split(":")
    config = getattr(importlib.import_module(module), name)
    params = _parsed(path, [inputs["manifest"], "-o", "out"])
    options = _job_options(params)
    assert set(options) <= {f.name for f in dataclasses.fields(config)}, "an option that is no config field"
    assert config(**options) == config()


@pytest.mark.parametrize("mode", ["vc", "tts"])
def test_synthesize_defaults_are_the_synthesis_dataclass_defaults(inputs, mode) -> None:
    from pipeline.synthesize import SynthesizeConfig, synthesize_config

    params = _parsed(("synthesize", mode), [inputs["manifest"], "-o", "out", "--synthesizer", inputs["synthesizer"]])
    built = synthesize_config(mode, (mode,), **_job_options(params))
    assert built == SynthesizeConfig(synthesizer=str(Path(inputs["synthesizer"]).resolve()), mode=mode, modes=(mode,))


def test_augment_defaults_are_the_augment_dataclass_defaults(inputs) -> None:
    from pipeline.augment import AUGMENT_MODES, AugmentConfig, AugmentOptions
    from pipeline.stages.synthesis_params import SynthesisDefaults
    from pipeline.synthesize import SynthesizeConfig, synthesize_config

    params = _parsed(("augment",), [inputs["manifest"], "-o", "out", "--synthesizer", inputs["synthesizer"]])
    defaults = AugmentOptions()
    assert (params["variants"], params["augment_mode"], params["prompts_path"], params["prompt_sampling"]) == (
        defaults.variants, defaults.mode, AugmentConfig.prompts, defaults.prompt_sampling)
    assert params["seed"] == defaults.seed == SynthesisDefaults().seed
    modes = AUGMENT_MODES[defaults.mode]
    built = synthesize_config(None, modes, **_job_options(params, "variants", "augment_mode", "prompts_path", "prompt_sampling"))
    assert built == SynthesizeConfig(synthesizer=str(Path(inputs["synthesizer"]).resolve()), mode=None, modes=modes)


def test_run_option_defaults_are_the_run_options_defaults(inputs) -> None:
    params = _parsed(("prepare",), [inputs["manifest"], "-o", "out"])
    parsed = RunOptions(**{name: params[name] for name in RUN_OPTION_FIELDS})
    assert parsed == RunOptions()


def test_score_defaults_are_the_score_dataclass_defaults(inputs) -> None:
    from pipeline.score import ScoreConfig, score_config

    params = _parsed(("score",), [inputs["manifest"], "-o", "out"])
    assert score_config(**_job_options(params)) == ScoreConfig()
    scored = _parsed(("synthesize", "vc"), [inputs["manifest"], "-o", "out", "--synthesizer", inputs["synthesizer"], "--score", "vad",
                                            "--min-speech-ratio", "0.5"])
    from pipeline.scoring import ScoreGates, ScoringConfig
    from pipeline.synthesize import synthesize_config

    built = synthesize_config("vc", ("vc",), **_job_options(scored))
    assert built.scoring == ScoringConfig(metrics=("vad",)) and built.score_gates == ScoreGates(min_speech_ratio=0.5)
