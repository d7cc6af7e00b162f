"""Rows that run out of memory alone are left for the re-run; a broken CUDA context restarts the actor.

Sink and summary first (no Ray), then a real job on the session's local Ray whose probe stages run
out of memory (split, deferral, summary, re-run) and hit a sticky CUDA error once (the actor process
exits, Ray restarts it and redoes the batch).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from pipeline.engine.item import Item
from pipeline.engine.sink import SinkConfig, commit_part
from pipeline.engine.summary import format_summary, summarize
from pipeline.io.output import ERRORS, INDEX, OutputDir, index_schema, part_name
from tests.conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "pipeline" / "examples" / "examples.parquet"
EXAMPLE_IDS = [f"1001/10/1001_10_00000{i}" for i in range(3)] + ["1002/10/1002_10_000000", "1002/10/1002_10_000001",
                                                                   "1003/10/1003_10_000000", "1003/10/1003_10_000001"]


def _sample(sample_id: str, row: int) -> Item:
    return Item(sample_id, row, {}, members={"txt": sample_id.encode()}, index={"duration": 1.0})


def test_the_sink_writes_deferred_rows_nowhere_and_names_parts_by_the_whole_batch(tmp_path: Path) -> None:
    out = OutputDir(str(tmp_path / "out"))
    out.ensure_layout()
    out.write_json("job.json", {"job": "probe", "manifest": {"path": "m.parquet", "rows": 3}, "options": {}})
    config = SinkConfig(out.base, out.start_run(), "probe", index_schema([]), 1 << 30, "test")
    good, bad, deferred = _sample("a", 0), _sample("b", 1), _sample("c", 2)
    bad.fail("model", ValueError("broken row"))
    deferred.defer("model", "OutOfMemoryError", "CUDA out of memory (left for a later run)")
    deferred.count("model", "deferred_oom")

    first = commit_part([good, bad, deferred], config)
    assert (first.part, first.samples, first.errors, first.deferred, first.deferred_ids) == (part_name(["a", "b", "c"]), 1, 1, 1, ["c"])
    assert first.stage_metrics == {"model": {"deferred_oom": 1}}
    assert out.done_ids() == {"a", "b"}  # the deferred row is still to do
    summary = summarize(out)
    assert not summary["complete"] and summary["rows_missing"] == 1

    assert commit_part([deferred], config).part == ""  # nothing to commit: nothing written
    assert out.committed_parts() == {first.part}

    again = _sample("c", 2)  # the re-run finishes it in a part of its own
    second = commit_part([again], config)
    assert second.part == part_name(["c"]) != first.part
    assert out.done_ids() == {"a", "b", "c"}
    index = out.read_parts(INDEX, columns=["id"]).column("id").to_pylist()
    errors = out.read_parts(ERRORS).column("id").to_pylist()
    assert sorted(index) == ["a", "c"] and errors == ["b"]
    assert summarize(out)["complete"]


def test_a_retried_sink_batch_that_defers_differently_rewrites_the_same_part(tmp_path: Path) -> None:
    """Ray may re-execute a batch (lost object, worker crash) and the out-of-memory outcome can differ:
    the part must keep its name, so the second try replaces the first instead of duplicating a and b."""
    out = OutputDir(str(tmp_path / "out"))
    out.ensure_layout()
    out.write_json("job.json", {"job": "probe", "manifest": {"path": "m.parquet", "rows": 3}, "options": {}})
    config = SinkConfig(out.base, out.start_run(), "probe", index_schema([]), 1 << 30, "test")
    a, b, c = _sample("a", 0), _sample("b", 1), _sample("c", 2)
    c.defer("model", "OutOfMemoryError", "CUDA out of memory (left for a later run)")
    first = commit_part([a, b, c], config)
    retry = commit_part([_sample("a", 0), _sample("b", 1), _sample("c", 2)], config)  # this time c fits
    assert first.part == retry.part and out.committed_parts() == {first.part}
    index = out.read_parts(INDEX, columns=["id"]).column("id").to_pylist()
    assert sorted(index) == ["a", "b", "c"]
    assert summarize(out)["complete"] and not summarize(out)["duplicates"]


def test_the_summary_says_how_many_rows_were_deferred_and_what_to_do() -> None:
    summary = {"job": "extract", "complete": False, "rows_in": 10, "samples_out": 8, "errors": 0, "rows_missing": 2,
               "audio_hours_in": 0.0, "audio_hours_out": 0.0, "rows_deferred_this_run": 2, "deferred_ids": ["x", "y"],
               "stage_metrics": {"model_features": {"batches": 5, "batch_failures": 3, "splits": 2, "oom": 3, "deferred_oom": 2}}}
    text = format_summary(summary)
    assert "INCOMPLETE" in text
    assert "deferred     2 row(s) ran out of device memory even alone (e.g. 'x', 'y'); re-running the same command retries them" in text
    assert "model_features: batches 5, batch_failures 3, splits 2, oom 3, deferred_oom 2" in text


@pytest.mark.usefixtures("ray_local")
def test_a_job_defers_rows_out_of_memory_alone_restarts_on_sticky_errors_and_the_rerun_finishes(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """One real job, two probe stages: out-of-memory splits and a deferred row; a sticky CUDA error that
    kills the actor once (Ray restarts it and redoes the batch). The re-run finishes the deferred row."""
    from pipeline.engine.job import Job, RunOptions
    from pipeline.engine.runner import run_job
    from pipeline.prepare import PrepareConfig, prepare_job
    from pipeline.testing.probes import OutOfMemoryProbeStage, StickyErrorProbeStage

    victim, until, crashed = EXAMPLE_IDS[4], tmp_path / "memory-is-free-now", tmp_path / "crashed-pid"
    base = prepare_job(PrepareConfig(sample_rate=16000))

    def build():
        return [*base.build_stages(), OutOfMemoryProbeStage(max_rows=2, ids=(victim,), until=str(until)),
                StickyErrorProbeStage(marker=str(crashed))]

    job = Job(name="probes", build_stages=build, index_fields=base.index_fields, output_options={"probes": True})
    out = tmp_path / "out"
    options = RunOptions(rows_per_shard=7, progress=False, actor_restarts=True)  # restarts as on a GPU or a cluster

    first = run_job(job, EXAMPLES, out, options)
    assert (first["complete"], first["samples_out"], first["errors"], first["rows_missing"]) == (False, 6, 0, 1)
    assert (first["rows_deferred_this_run"], first["deferred_ids"]) == (1, [victim])
    counters = first["stage_metrics"]["oom_probe"]
    assert counters["deferred_oom"] == 1 and counters["splits"] >= 2 and counters["oom"] >= 3
    assert json.loads((out / "summary.json").read_text())["rows_deferred_this_run"] == 1
    printed = capfd.readouterr().err
    assert "INCOMPLETE" in printed and "re-running the same command retries them" in printed and "oom_probe: batches" in printed
    assert victim not in OutputDir(str(out)).done_ids()
    assert crashed.exists()  # the sticky error did happen, and cost no row:
    pids = set()
    for shard in (out / "shards").glob("*.tar"):
        with tarfile.open(shard) as tar:
            pids |= {json.loads(tar.extractfile(m).read())["sticky_probe"] for m in tar.getmembers() if m.name.endswith(".json")}
    assert pids and int(crashed.read_text()) not in pids  # every row made by a live process, none by the crashed one
    parts = OutputDir(str(out)).committed_parts()

    until.touch()
    second = run_job(job, EXAMPLES, out, options)
    assert (second["complete"], second["rows_this_run"], second["samples_out"], second["duplicates"]) == (True, 1, 7, [])
    assert second["rows_deferred_this_run"] == 0
    assert OutputDir(str(out)).committed_parts() == parts | {part_name([victim])}
