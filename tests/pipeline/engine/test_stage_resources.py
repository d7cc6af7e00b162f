"""`--stage-resources` changes the named stage only: every stage of a job owns its Resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.engine.stage_resources import apply_stage_resources


def _jobs(tmp_path: Path):
    from hierspeech.testing.tiny_synthesis import write_tiny_checkpoints
    from pipeline.extract import ExtractConfig, extract_job
    from pipeline.synthesize import SynthesizeConfig, synthesize_job

    paths = write_tiny_checkpoints(tmp_path / "models")  # the job checks its checkpoints when it is built
    yield "extract", extract_job(ExtractConfig(features=("f0", "tokens", "mel"), cpus_per_task=2.0))
    tts = SynthesizeConfig(synthesizer=paths["synthesizer"], ttv=paths["ttv"], denoiser=paths["denoiser"],
                           mode="tts", modes=("tts",), cpus_per_task=2.0)
    yield "synthesize_tts", synthesize_job(tts)


def test_each_stage_owns_its_resources_and_an_override_changes_one_stage(tmp_path: Path) -> None:
    for job_name, job in _jobs(tmp_path):
        stages = job.build_stages()
        assert len({id(stage.resources) for stage in stages}) == len(stages), job_name
        first = stages[0]
        before = {stage.name: stage.resources.num_cpus for stage in stages}
        apply_stage_resources(stages, {first.name: {"num_cpus": 3.0}})
        after = {stage.name: stage.resources.num_cpus for stage in stages}
        assert after == {**before, first.name: 3.0}, job_name
        assert [s.name for s in stages if s.resources.num_cpus == 3.0] == [first.name]


def test_an_override_never_reaches_a_stage_that_shares_the_object() -> None:
    """Even stages built around one Resources object (a user's own job) are changed one by one."""
    from pipeline.engine.stage import Resources, Stage

    class Decode(Stage):
        name = "decode"

    class Tokens(Stage):
        name = "tokens"

    shared = Resources(num_cpus=1.0)
    stages = [Decode(shared), Tokens(shared)]
    apply_stage_resources(stages, {"decode": {"num_cpus": 3.0, "memory": 1 << 20}})
    assert stages[0].resources == Resources(num_cpus=3.0, memory=1 << 20)
    assert stages[1].resources == Resources(num_cpus=1.0) and shared == Resources(num_cpus=1.0)


@pytest.mark.parametrize("stage_name", ["stored_audio", "tokens"])
def test_extract_stage_names_are_distinct(tmp_path: Path, stage_name: str) -> None:
    job = dict(_jobs(tmp_path))["extract"]
    stages = job.build_stages()
    apply_stage_resources(stages, {stage_name: {"num_cpus": 0.5}})
    assert {s.name: s.resources.num_cpus for s in stages}[stage_name] == 0.5
    assert {s.name: s.resources.num_cpus for s in stages}["decode"] == 2.0
