"""`prepare` on a real local Ray over a manifest mixing good and broken inputs."""

import glob
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import webdataset as wds

from pipeline.engine.job import RunOptions
from pipeline.engine.runner import run_job
from pipeline.io.keys import sample_key
from pipeline.io.manifest import ManifestError
from pipeline.io.output import OutputConflictError
from pipeline.prepare import PrepareConfig, prepare_job
from tests.pipeline.conftest import write_manifest


def _read_shards(out):
    return list(wds.WebDataset(sorted(glob.glob(f"{out}/shards/*.tar")), shardshuffle=False, empty_check=False))


def test_every_row_ends_up_exactly_once_with_reasons(tmp_path, mixed_corpus, ray_local):
    manifest = write_manifest(tmp_path / "m.parquet", mixed_corpus)
    out = tmp_path / "out"
    summary = run_job(prepare_job(PrepareConfig(sample_rate=16000, max_seconds=10)), manifest, out, RunOptions(rows_per_shard=3, progress=False))

    index = pq.read_table(out / "index.parquet").to_pylist()
    errors = pq.read_table(out / "errors.parquet").to_pylist()
    written = [r["id"] for r in index]
    failed = [r["id"] for r in errors]
    assert sorted(written + failed) == sorted(mixed_corpus)  # union == manifest, each once
    assert not set(written) & set(failed)
    assert summary["complete"] and summary["samples_out"] == len(written) and summary["errors"] == len(failed)
    for row in errors:
        case = mixed_corpus[row["id"]]
        assert case["expect"] == "error", row
        assert case["reason"] in row["message"], row
        assert row["stage"] in {"decode", "validate"}
    assert {i for i, c in mixed_corpus.items() if c["expect"] == "ok"} == set(written)

    samples = _read_shards(out)
    assert len(samples) == len(written)
    by_id = {}
    for sample in samples:
        meta = json.loads(sample["json"])
        assert sample["__key__"] == sample_key(meta["id"])
        audio, rate = sf.read(io.BytesIO(sample["flac"]), dtype="float32")
        assert rate == 16000 and audio.ndim == 1 and np.isfinite(audio).all()
        by_id[meta["id"]] = (audio, meta)
    for sample_id, case in mixed_corpus.items():
        if case["expect"] == "ok" and case["samples"] is not None:
            assert len(by_id[sample_id][0]) == case["samples"], sample_id
    assert by_id["stereo44k"][1]["source_channels"] == 2 and by_id["stereo44k"][1]["source_sample_rate"] == 44100
    assert by_id["mp3"][0].size == pytest.approx(16000, rel=0.1)
    # nothing escaped the output folder
    assert not list(tmp_path.glob("etc")) and all(p.startswith(str(out)) for p in glob.glob(f"{out}/**", recursive=True))


def test_rerun_of_a_complete_job_does_nothing_and_changed_inputs_are_refused(tmp_path, mixed_corpus, ray_local):
    manifest = write_manifest(tmp_path / "m.parquet", mixed_corpus)
    out = tmp_path / "out"
    options = RunOptions(rows_per_shard=4, progress=False)
    run_job(prepare_job(PrepareConfig(sample_rate=16000, max_seconds=10)), manifest, out, options)
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    summary = run_job(prepare_job(PrepareConfig(sample_rate=16000, max_seconds=10)), manifest, out, options)
    assert summary["rows_this_run"] == 0 and summary["complete"]
    assert {p: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == mtimes

    with pytest.raises(OutputConflictError, match="options"):
        run_job(prepare_job(PrepareConfig(sample_rate=24000, max_seconds=10)), manifest, out, options)
    other = dict(mixed_corpus)
    other.pop("long")
    with pytest.raises(OutputConflictError, match="different manifest"):
        run_job(prepare_job(PrepareConfig(sample_rate=16000, max_seconds=10)), write_manifest(tmp_path / "m2.parquet", other), out, options)


def test_invalid_manifest_is_rejected_before_any_work(tmp_path, ray_local):
    manifest = tmp_path / "dup.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "a"], "audio": ["x.wav", "y.wav", "z.wav"]}), manifest)
    with pytest.raises(ManifestError, match=r"row 2 \(id 'a'\), column 'id': duplicate id 'a'"):
        run_job(prepare_job(PrepareConfig()), manifest, tmp_path / "out", RunOptions(progress=False))
    assert not (tmp_path / "out").exists()


def test_strict_mode_refuses_missing_files(tmp_path, mixed_corpus, ray_local):
    manifest = write_manifest(tmp_path / "m.parquet", mixed_corpus)
    with pytest.raises(ManifestError, match="file not found"):
        run_job(prepare_job(PrepareConfig()), manifest, tmp_path / "out", RunOptions(strict=True, progress=False))


def test_shards_split_by_bytes(tmp_path, mixed_corpus, ray_local):
    ok = {k: v for k, v in mixed_corpus.items() if v["expect"] == "ok"}
    manifest = write_manifest(tmp_path / "m.parquet", ok)
    out = tmp_path / "out"
    run_job(prepare_job(PrepareConfig()), manifest, out, RunOptions(rows_per_shard=100, max_shard_bytes=20_000, progress=False))
    tars = sorted((out / "shards").glob("*.tar"))
    assert len(tars) > 1
    index = pq.read_table(out / "index.parquet").to_pylist()
    assert {r["shard"] for r in index} == {f"shards/{t.name}" for t in tars}
    assert len(_read_shards(out)) == len(ok)


def test_a_stage_that_cannot_start_stops_the_job_with_a_clear_message(tmp_path, mixed_corpus, ray_local):
    from pipeline.engine.job import Job
    from pipeline.engine.runner import JobFailedError
    from pipeline.engine.stage import Resources, Stage

    class BrokenModelStage(Stage):
        name = "broken_model"
        stateful = True

        def setup(self):
            raise FileNotFoundError("checkpoint /nowhere/G.pth not found; set HSP_WEIGHTS_DIR")

    manifest = write_manifest(tmp_path / "m.parquet", mixed_corpus)
    job = Job("broken", lambda: [BrokenModelStage(Resources(num_cpus=0.5))])
    with pytest.raises(JobFailedError, match=r"checkpoint /nowhere/G\.pth not found") as info:
        run_job(job, manifest, tmp_path / "out", RunOptions(progress=False))
    assert "re-run the same command" in str(info.value)


def test_empty_manifest_is_rejected(tmp_path, ray_local):
    manifest = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "audio": pa.array([], pa.string())}), manifest)
    with pytest.raises(ManifestError, match="no rows"):
        run_job(prepare_job(PrepareConfig()), manifest, tmp_path / "out", RunOptions(progress=False))
