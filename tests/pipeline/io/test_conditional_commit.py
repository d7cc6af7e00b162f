"""The commit protocol on an object store, piece by piece, against a real S3 server (moto) on 127.0.0.1.

No Ray here: the sink's `commit_part`, the lease and the probe are called directly, so the
cases a job run reaches only by chance (a retried task whose first try committed, two attempts
of one part racing, a driver that stalled past its lease) are each forced and checked.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.engine.item import Item
from pipeline.engine.sink import SinkConfig, StaleRunError, commit_part
from pipeline.io.lease import LEASE_NAME, LeaseConfig, LeaseHeldError, LeaseLostError, RunLease
from pipeline.io.object_store import ConditionalWritesError, open_store, probe
from pipeline.io.output import CONDITIONAL, ERRORS, INDEX, SHARDS, STATE, OutputDir, index_schema
from pipeline.io.storage import use_storage_options
from pipeline.testing.s3_server import s3_env, s3_server
from tests.conftest import REPO_ROOT

pytest.importorskip("moto.server", reason="moto[server] is not installed (dev dependency)")
pytest.importorskip("s3fs", reason="s3fs is not installed (the cloud extra)")


@pytest.fixture(scope="module")
def endpoint():
    with s3_server() as url:
        yield url


@pytest.fixture()
def s3(endpoint, monkeypatch, request):
    """An empty bucket on the server, reached through AWS_* like a cluster's environment."""
    for key, value in s3_env(endpoint).items():
        monkeypatch.setenv(key, value)
    use_storage_options(None)
    from pipeline.io.storage import fsspec_filesystem

    bucket = f"b-{request.node.name.lower().replace('_', '-')[:40]}-{time.time_ns() % 10**6}"
    fs, _ = fsspec_filesystem(f"s3://{bucket}")
    fs.mkdir(bucket)
    yield fs, bucket
    use_storage_options(None)


def _items(n: int, failed: int = 0) -> list[Item]:
    items = []
    for i in range(n):
        item = Item(id=f"spk/u{i}", row=i, fields={})
        item.members = {"flac": f"audio-{i}".encode()}
        if i < failed:
            item.fail("decode", "cannot decode", error="AudioError")
        items.append(item)
    return items


def _start(root: str) -> tuple[OutputDir, SinkConfig]:
    out = OutputDir(root)
    run_id = out.start_run()
    lease = RunLease(out.store, out.path(STATE, LEASE_NAME), root, run_id, LeaseConfig(ttl_seconds=60))
    lease.acquire()
    config = SinkConfig(out=root, run_id=run_id, job="prepare", index_schema=index_schema([]), max_shard_bytes=1 << 30,
                        package_version="test", commit_protocol=CONDITIONAL)
    return out, config


def _files(fs, bucket: str, sub: str) -> list[str]:
    return sorted(p.rsplit("/", 1)[-1] for p in fs.find(f"{bucket}/out/{sub}"))


def test_probe_accepts_a_store_that_honours_conditions(s3):
    fs, bucket = s3
    probe(open_store(f"s3://{bucket}/out"), f"{bucket}/out/_state", f"s3://{bucket}/out")
    assert fs.find(f"{bucket}/out") == [], "the probe object was not deleted"


def test_probe_refuses_a_store_that_ignores_conditions(monkeypatch):
    with s3_server(ignore_conditions=True) as url:
        for key, value in s3_env(url).items():
            monkeypatch.setenv(key, value)
        use_storage_options(None)
        from pipeline.io.storage import fsspec_filesystem

        fs, _ = fsspec_filesystem("s3://ignoring")
        fs.mkdir("ignoring")
        with pytest.raises(ConditionalWritesError) as caught:
            probe(open_store("s3://ignoring/out"), "ignoring/out/_state", "s3://ignoring/out")
        message = str(caught.value)
        assert "\n" not in message and "ignores conditional writes" in message and "--unsafe-object-store-commit" in message
        assert fs.find("ignoring/out") == []
    use_storage_options(None)


def test_retried_task_after_commit_writes_nothing_new(s3):
    fs, bucket = s3
    out, config = _start(f"s3://{bucket}/out")
    first = commit_part(_items(4, failed=1), config)
    files = {sub: _files(fs, bucket, sub) for sub in (SHARDS, INDEX, ERRORS)}
    mtimes = {p: fs.info(p)["LastModified"] for p in fs.find(f"{bucket}/out/{SHARDS}")}
    again = commit_part(_items(4, failed=1), config)  # Ray ran the task again after its first try committed
    assert (again.part, again.samples, again.errors, again.shards) == (first.part, 3, 1, first.shards)
    assert {sub: _files(fs, bucket, sub) for sub in (SHARDS, INDEX, ERRORS)} == files
    assert {p: fs.info(p)["LastModified"] for p in fs.find(f"{bucket}/out/{SHARDS}")} == mtimes
    assert sorted(out.read_parts(INDEX).column("id").to_pylist()) == ["spk/u1", "spk/u2", "spk/u3"]
    assert out.read_parts(ERRORS).column("id").to_pylist() == ["spk/u0"]


def test_losing_attempt_of_a_part_deletes_its_own_files(s3, monkeypatch):
    fs, bucket = s3
    out, config = _start(f"s3://{bucket}/out")
    winner = commit_part(_items(3), config)
    before = {sub: _files(fs, bucket, sub) for sub in (SHARDS, INDEX, ERRORS)}
    # a second attempt that started before the first committed: it does not see the index part,
    # writes its own tar and errors part, and its exclusive create of the index part is refused
    real_exists = OutputDir.exists
    monkeypatch.setattr(OutputDir, "exists", lambda self, *parts: False if parts[:1] == (INDEX,) else real_exists(self, *parts))
    created = []
    real_create = type(out.store).create
    monkeypatch.setattr(type(out.store), "create", lambda self, path, data: created.append(path) or real_create(self, path, data))
    loser = commit_part(_items(3), config)
    assert created == [f"{bucket}/out/{INDEX}/part-{winner.part}.parquet"], "the loser did not try the commit"
    assert loser.shards == winner.shards and loser.samples == 3
    assert {sub: _files(fs, bucket, sub) for sub in (SHARDS, INDEX, ERRORS)} == before
    assert out.cleanup_uncommitted() == []


def test_leftovers_of_a_crashed_losing_attempt_are_never_read_and_cleaned_up(s3):
    fs, bucket = s3
    out, config = _start(f"s3://{bucket}/out")
    winner = commit_part(_items(2, failed=1), config)
    shard = _files(fs, bucket, SHARDS)[0]
    # a losing attempt that crashed before deleting its files: its own names, same part
    fs.pipe_file(f"{bucket}/out/{SHARDS}/shard-{winner.part}-deadbeef.tar", b"loser")
    errors = io.BytesIO()
    pq.write_table(pa.table({"id": ["spk/u1"], "row": [1], "stage": ["x"], "error": ["E"], "message": ["m"]}), errors)
    fs.pipe_file(f"{bucket}/out/{ERRORS}/part-{winner.part}-deadbeef.parquet", errors.getvalue())
    fs.pipe_file(f"{bucket}/out/{STATE}/.probe-0123", b"1")  # a driver killed during its start probe
    assert out.read_parts(ERRORS).column("id").to_pylist() == ["spk/u0"]  # the winner's only
    removed = out.cleanup_uncommitted()
    assert sorted(removed) == [f"{STATE}/.probe-0123", f"{ERRORS}/part-{winner.part}-deadbeef.parquet", f"{SHARDS}/shard-{winner.part}-deadbeef.tar"]
    assert _files(fs, bucket, SHARDS) == [shard]


def test_writer_of_an_expired_or_taken_over_lease_does_not_commit(s3):
    fs, bucket = s3
    root = f"s3://{bucket}/out"
    out, config = _start(root)
    path = out.path(STATE, LEASE_NAME)
    record = json.loads(fs.cat_file(path))
    record["expires"] = time.time() + 10  # less than half of the 60 s lease left: the driver stopped renewing
    fs.pipe_file(path, json.dumps(record).encode())
    with pytest.raises(StaleRunError, match="about to expire"):
        commit_part(_items(2), config)
    record.update(run_id="someone-else", expires=time.time() + 60)
    fs.pipe_file(path, json.dumps(record).encode())
    with pytest.raises(StaleRunError, match="took the output's lease over"):
        commit_part(_items(2), config)
    assert fs.find(f"{bucket}/out/{INDEX}") == [] and fs.find(f"{bucket}/out/{SHARDS}") == []


def test_lease_refuses_a_second_driver_and_is_taken_over_after_expiry(s3):
    fs, bucket = s3
    root = f"s3://{bucket}/out"
    store = open_store(root)
    path = f"{bucket}/out/_state/{LEASE_NAME}"
    first = RunLease(store, path, root, "run-1", LeaseConfig(ttl_seconds=2))
    first.acquire()
    second = RunLease(store, path, root, "run-2", LeaseConfig(ttl_seconds=2))
    with pytest.raises(LeaseHeldError) as caught:
        second.acquire()
    assert "another run is writing to" in str(caught.value) and "run run-1" in str(caught.value) and "\n" not in str(caught.value)
    first.renew()  # the live driver keeps it
    time.sleep(2.2)  # first stalls past its lease
    second.acquire()
    assert second.taken_over is not None and second.taken_over["run_id"] == "run-1"
    first.renew()  # the stalled driver wakes up: its compare-and-swap fails
    with pytest.raises(LeaseLostError, match="lost the lease"):
        first.check()
    second.release()
    third = RunLease(store, path, root, "run-3", LeaseConfig(ttl_seconds=2))
    third.acquire()  # a released lease is free at once
    assert json.loads(fs.cat_file(path))["run_id"] == "run-3"


def test_run_record_is_replaced_by_compare_and_swap(s3, monkeypatch):
    fs, bucket = s3
    out = OutputDir(f"s3://{bucket}/out")
    first = out.start_run()
    assert out.current_run_id() == first
    second = out.start_run()
    assert out.current_run_id() == second != first
    # another driver replaces run.json between this driver's read and its write: refused
    real_read = type(out.store).read

    def read_then_race(self, path):
        current = real_read(self, path)
        fs.pipe_file(path, json.dumps({"run_id": "other"}).encode())
        return current

    monkeypatch.setattr(type(out.store), "read", read_then_race)
    with pytest.raises(Exception, match="another run replaced"):
        out.start_run()
    assert out.current_run_id() == "other"


def test_local_outputs_import_nothing_cloud_specific(tmp_path):
    """A local run's I/O (manifest, output, commit, resume) never imports s3fs, gcsfs, botocore or fsspec's stores."""
    code = f"""
import sys, pyarrow as pa, pyarrow.parquet as pq
from pipeline.engine.item import Item
from pipeline.engine.sink import SinkConfig, commit_part
from pipeline.engine.runner import run_job
from pipeline.io.manifest import read_manifest
from pipeline.io.output import OutputDir, index_schema
pq.write_table(pa.table({{"id": ["a"], "audio": ["x.wav"]}}), "{tmp_path}/m.parquet")
read_manifest("{tmp_path}/m.parquet")
out = OutputDir("{tmp_path}/out"); out.ensure_layout()
with out.locked():
    run_id = out.start_run()
    commit_part([Item(id="a", row=0, fields={{}})], SinkConfig("{tmp_path}/out", run_id, "prepare", index_schema([]), 1 << 30, "t"))
    out.cleanup_uncommitted(); out.done_ids()
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("s3fs", "gcsfs", "botocore", "aiobotocore", "boto3", "google"))))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""
