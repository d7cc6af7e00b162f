"""The compute record of real runs on the session's local Ray (CPU): job.json, the summary, and a resume
that would mix CPU and GPU outputs. Fake GPUs and a torch that cannot see them: tests/pipeline/engine/test_resources.py."""

from __future__ import annotations

import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.engine.compute import MixedDevicesError
from pipeline.engine.item import Item
from pipeline.engine.job import Job, RunOptions
from pipeline.engine.runner import run_job
from pipeline.engine.stage import Stage

CPU_RECORD = {"device": "cpu", "gpus": [], "precision": "fp32"}


class NoteStage(Stage):
    name = "note"

    def process_item(self, item: Item) -> None:
        item.meta["noted"] = True
        item.members["txt"] = item.id.encode()


def _job() -> Job:
    return Job("noting", lambda: [NoteStage()], output_options={"kind": "note"})


def _manifest(tmp_path, rows: int = 4) -> str:
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(rows)], "audio": [f"x{i}" for i in range(rows)]}), path)
    return str(path)


def _forget_one_part(out) -> None:
    """Uncommit a part, as a killed run leaves it: its rows are to do again."""
    next((out / "index.parquet").glob("part-*.parquet")).unlink()


def test_a_cpu_run_records_its_compute_and_a_resume_on_another_device_is_refused(tmp_path, ray_local, capsys) -> None:
    manifest, out = _manifest(tmp_path), tmp_path / "out"
    options = RunOptions(rows_per_shard=2, progress=False, precision="bf16")
    summary = run_job(_job(), manifest, out, options)
    assert summary["complete"] and summary["compute"] == CPU_RECORD
    job = json.loads((out / "job.json").read_text())
    assert job["compute"] == CPU_RECORD and job["options"] == {"kind": "note"}  # run options stay out of `options`
    assert "[noting] --precision bf16 applies to CUDA only: this run computes on CPU, in fp32" in capsys.readouterr().err
    metas = []
    for shard in (out / "shards").glob("*.tar"):
        with tarfile.open(shard) as tar:
            metas += [json.load(tar.extractfile(m)) for m in tar.getmembers() if m.name.endswith(".json")]
    assert len(metas) == 4 and all(m["compute"] == {"device": "cpu", "gpu": None, "precision": "fp32"} for m in metas)

    # an earlier run on a GPU wrote this output; this run would add CPU rows to it
    (out / "job.json").write_text(json.dumps({**job, "compute": {"device": "cuda", "gpus": ["NVIDIA H200"], "precision": "fp32"}}))
    _forget_one_part(out)
    parts = sorted((out / "index.parquet").glob("part-*.parquet"))
    with pytest.raises(MixedDevicesError) as info:
        run_job(_job(), manifest, out, RunOptions(rows_per_shard=2, progress=False))
    message = str(info.value)
    assert "\n" not in message and "holds output computed on cuda and this run would compute on cpu" in message
    assert "--allow-mixed-devices" in message
    assert sorted((out / "index.parquet").glob("part-*.parquet")) == parts  # refused before any row ran

    summary = run_job(_job(), manifest, out, RunOptions(rows_per_shard=2, progress=False, allow_mixed_devices=True))
    assert summary["complete"]
    assert json.loads((out / "job.json").read_text())["compute"] == {"device": "mixed", "gpus": ["NVIDIA H200"], "precision": "fp32"}
    _forget_one_part(out)
    assert run_job(_job(), manifest, out, RunOptions(rows_per_shard=2, progress=False))["complete"]  # mixed already: no refusal


def test_an_output_without_a_compute_record_resumes_and_gets_one(tmp_path, ray_local) -> None:
    manifest, out = _manifest(tmp_path), tmp_path / "out"
    run_job(_job(), manifest, out, RunOptions(rows_per_shard=2, progress=False))
    job = json.loads((out / "job.json").read_text())
    del job["compute"]  # written by a version before the compute record
    (out / "job.json").write_text(json.dumps(job))
    _forget_one_part(out)
    assert run_job(_job(), manifest, out, RunOptions(rows_per_shard=2, progress=False, device="cpu"))["complete"]
    assert json.loads((out / "job.json").read_text())["compute"] == CPU_RECORD
