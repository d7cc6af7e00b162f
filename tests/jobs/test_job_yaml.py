"""Job YAML entry points: keys map onto the `hsp` command, bad files are refused before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from jobs._entry import JobSpecError, job_command, job_main, spec_to_argv
from pipeline.engine.stage import Resources, Stage
from pipeline.engine.stage_resources import StageResourcesError, apply_stage_resources, parse_stage_resources
from tests.conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "jobs" / "examples"


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_validates(example: Path, monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)
    job = yaml.safe_load(example.read_text())["job"]
    assert (REPO_ROOT / "jobs" / f"{job}.py").is_file(), f"jobs/{job}.py entry point"
    assert job_main(job, [str(example), "--check"]) == 0, capsys.readouterr().err
    assert job_main(None, [str(example), "--check"]) == 0  # python -m jobs picks the job from `job:`


def test_yaml_keys_become_the_command_line():
    spec = {
        "job": "prepare",
        "inputs": {"manifest": "s3://bucket/m.parquet"},
        "outputs": {"output": "s3://bucket/out", "rows-per-shard": 8},
        "sr": 24000,
        "strict": True,
        "progress": False,
        "resources": {"decode": {"num_cpus": 2, "memory": "1G"}, "encode_flac": {"actors": 1}},
    }
    argv = spec_to_argv(job_command("prepare"), spec, "prepare")
    assert argv == [
        "--output", "s3://bucket/out", "--rows-per-shard", "8", "--sr", "24000", "--strict", "--no-progress",
        "--stage-resources", "decode=num_cpus:2,memory:1G", "--stage-resources", "encode_flac=actors:1",
        "--", "s3://bucket/m.parquet",
    ]  # fmt: skip
    context = job_command("prepare").make_context("prepare", argv)
    assert context.params["stage_resources"] == {"decode": {"num_cpus": 2.0, "memory": 1 << 30}, "encode_flac": {"actors": 1}}
    assert context.params["sample_rate"] == 24000 and context.params["manifest_path"] == "s3://bucket/m.parquet"


def test_device_run_options_from_yaml_reach_the_run_options():
    from pipeline.cli.options import RUN_OPTION_FIELDS
    from pipeline.engine.job import RunOptions

    spec = {"manifest": "s3://b/m.parquet", "output": "out", "run": {"device": "cuda", "precision": "bf16", "allow_mixed_devices": True}}
    argv = spec_to_argv(job_command("prepare"), spec, "prepare")
    assert argv[:6] == ["--output", "out", "--device", "cuda", "--precision", "bf16"] and "--allow-mixed-devices" in argv
    params = job_command("prepare").make_context("prepare", argv).params
    run = RunOptions(**{name: params[name] for name in RUN_OPTION_FIELDS})
    assert (run.device, run.precision, run.allow_mixed_devices) == ("cuda", "bf16", True)
    with pytest.raises(click.BadParameter, match="'fp16' is not one of 'fp32', 'tf32', 'bf16'"):
        job_command("prepare").make_context("prepare", ["-o", "o", "--precision", "fp16", "s3://b/m.parquet"])


def test_storage_options_mapping_becomes_json():
    spec = {"manifest": "s3://b/m.parquet", "output": "s3://b/out", "run": {"storage_options": {"endpoint_url": "http://127.0.0.1:9000"}}}
    argv = spec_to_argv(job_command("prepare"), spec, "prepare")
    assert argv[argv.index("--storage-options") + 1] == '{"endpoint_url": "http://127.0.0.1:9000"}'
    context = job_command("prepare").make_context("prepare", argv)
    assert context.params["storage_options"] == {"endpoint_url": "http://127.0.0.1:9000"}
    with pytest.raises(click.BadParameter, match="not valid JSON"):
        job_command("prepare").make_context("prepare", ["-o", "o", "--storage-options", "{endpoint", "m.parquet"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"manifest": "m", "output": "o", "sample_rat": 1}, r"unknown key\(s\) sample_rat .* allowed keys: manifest, output, sr, channels"),
        ({"output": "o"}, r"missing required key\(s\) manifest"),
        ({"job": "upsample", "manifest": "m", "output": "o"}, r"says job 'upsample'"),
        ({"manifest": "m", "output": "o", "strict": "yes"}, r"'strict' is a switch"),
        ({"manifest": "m", "output": "o", "sr": 16000, "sample_rate": 8000}, r"set the same parameter"),
        ({"manifest": "m", "output": "o", "resources": {"decode": 2}}, r"must be a mapping"),
    ],
)
def test_bad_yaml_is_refused_with_the_allowed_keys(spec, message):
    with pytest.raises(JobSpecError, match=message):
        spec_to_argv(job_command("prepare"), spec, "prepare")


def test_bad_values_fail_in_click_before_any_work(tmp_path, capsys):
    """Types, ranges and resource keys are checked by click's parser; nothing starts (no Ray, no output)."""
    spec = tmp_path / "job.yaml"
    out = tmp_path / "out"
    for bad, message in [
        ({"sr": 10}, "10 is not in the range"),
        ({"resources": {"decode": {"gpus": 1}}}, "unknown resource key 'gpus'; allowed: num_cpus, num_gpus, actors, memory"),
        ({"manifest": str(tmp_path / "missing.parquet")}, "does not exist"),
    ]:
        spec.write_text(yaml.safe_dump({"manifest": str(REPO_ROOT / "pipeline/examples/examples.parquet"), "output": str(out), **bad}))
        assert job_main("prepare", [str(spec)]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()
    spec.write_text("manifest: [unclosed")
    assert job_main("prepare", [str(spec)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_stage_resource_overrides():
    assert parse_stage_resources(["upsample=num_gpus:0.5,actors:4,memory:2G", "decode=num_cpus:1"]) == {
        "upsample": {"num_gpus": 0.5, "actors": 4, "memory": 2 << 30},
        "decode": {"num_cpus": 1.0},
    }
    for bad in ["decode", "decode=cpus:1", "decode=num_cpus:x", "decode=actors:0", "decode=memory:lots"]:
        with pytest.raises(StageResourcesError):
            parse_stage_resources([bad])

    class Decode(Stage):
        name = "decode"

    stages = [Decode(Resources(num_cpus=1)), Stage()]
    notes = apply_stage_resources(stages, {"decode": {"num_cpus": 3.0, "memory": 1 << 20}})
    assert stages[0].resources == Resources(num_cpus=3.0, memory=1 << 20) and "decode" in notes[0]
    with pytest.raises(StageResourcesError, match=r"unknown stage.*upsampel; this job's stages are: decode, stage"):
        apply_stage_resources(stages, {"upsampel": {"num_gpus": 1}})


def test_prepare_job_yaml_runs_like_hsp_prepare(tmp_path):
    """One real run through `python -m jobs.prepare`: overrides reach the plan, output is complete."""
    out = tmp_path / "prepared"
    spec = tmp_path / "job.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "job": "prepare",
                "inputs": {"manifest": str(REPO_ROOT / "pipeline/examples/examples.parquet")},
                "outputs": {"output": str(out), "rows_per_shard": 4},
                "run": {"num_cpus": 4, "progress": False},
                "resources": {"decode": {"num_cpus": 2, "memory": "256M"}},
            }
        )
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    done = subprocess.run([sys.executable, "-m", "jobs.prepare", str(spec)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cluster: 1 node(s), 4 CPUs, 0 GPUs" in done.stderr
    assert "decode         tasks            cpus=2 gpus=0 memory=0.25G" in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["samples_out"] == 7 and not summary["duplicates"], summary
    history = json.loads((out / "_state" / "runs.json").read_text())
    assert history[-1]["command"] == ["python", "-m", "jobs.prepare", str(spec)]


def test_every_registered_job_has_an_entry_point_and_an_example():
    from pipeline.registry import JOBS

    for name in JOBS:
        assert (REPO_ROOT / "jobs" / f"{name}.py").is_file(), f"jobs/{name}.py"
        example = EXAMPLES / f"{name}.yaml"
        assert example.is_file() and yaml.safe_load(example.read_text())["job"] == name, example


@pytest.mark.parametrize(("job", "words"), [("synthesize_vc", ("synthesize", "vc")), ("synthesize_tts", ("synthesize", "tts")), ("augment", ("augment",))])
def test_synthesis_yaml_keys_become_the_subcommand_line(job, words):
    from pipeline.cli import main

    command = main
    for word in words:
        command = command.commands[word]
    assert job_command(job) is command
    spec = {"job": job, "inputs": {"manifest": "m.parquet"}, "outputs": {"output": "out"}, "models": {"models_file": "models.yaml"}, "seed": 3}
    assert spec_to_argv(command, spec, job) == ["--output", "out", "--models", "models.yaml", "--seed", "3", "--", "m.parquet"]
    with pytest.raises(JobSpecError, match=r"unknown key\(s\) noise_scal"):
        spec_to_argv(command, {**spec, "noise_scal": 1}, job)


def test_synthesis_yaml_errors_go_through_the_root_group(tmp_path, capsys):
    """A synthesis YAML without checkpoints fails like `hsp synthesize tts` does: one line, exit 2, no output."""
    spec = tmp_path / "tts.yaml"
    spec.write_text(yaml.safe_dump({"job": "synthesize_tts", "manifest": str(REPO_ROOT / "pipeline/examples/tts.parquet"), "output": str(tmp_path / "out")}))
    assert job_main("synthesize_tts", [str(spec)]) == 2
    assert "Error: pass --synthesizer PATH (or --models models.yaml)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(JobSpecError, match="unknown job 'synthesize'; known jobs: augment, extract, prepare, probe, score, synthesize_tts, synthesize_vc, upsample"):
        job_command("synthesize")
