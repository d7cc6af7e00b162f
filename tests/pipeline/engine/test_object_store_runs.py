"""`hsp` runs on a real S3 server (moto on 127.0.0.1): exactly-once through kills, two drivers, and stores that lie.

Manifest and audio live in the bucket too. Each run is a real `hsp` process with its own local
Ray; the lease time is cut to 20 s (HSP_LEASE_SECONDS) so a takeover after a kill is quick to
wait for. Tests that start Ray take a minute or more on a busy 2-core machine and are marked
slow; the default suite runs the refusal of a store that ignores conditional writes (no Ray),
the protocol's pieces (tests/pipeline/io/test_conditional_commit.py) and a prepare-and-resume
on S3 (tests/pipeline/io/test_object_store.py). The probe job's `--hold FILE` stops its one actor after its first row until
FILE exists: a test acts between two commits without racing the job.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline.testing.s3_server import s3_env, s3_server
from tests.conftest import REPO_ROOT
from tests.pipeline.conftest import tone

pytest.importorskip("moto.server", reason="moto[server] is not installed (dev dependency)")
pytest.importorskip("s3fs", reason="s3fs is not installed (the cloud extra)")

ROWS = 8
LEASE_SECONDS = 20  # short enough to wait for in a test, long enough for a busy 2-core machine's renewals


def _fs(endpoint: str):
    import s3fs

    return s3fs.S3FileSystem(key="test", secret="test", endpoint_url=endpoint, use_listings_cache=False, skip_instance_cache=True)


def _corpus(fs, bucket: str) -> str:
    """ROWS tones and one missing file on s3, a manifest beside them with relative paths; returns its URI."""
    fs.mkdir(bucket)
    ids, paths = [], []
    for i in range(ROWS):
        buffer = io.BytesIO()
        rate = (16000, 22050, 44100)[i % 3]
        sf.write(buffer, tone(0.3, rate, freq=180 + 20 * i), rate, format="WAV")
        fs.pipe_file(f"{bucket}/corpus/u{i}.wav", buffer.getvalue())
        ids.append(f"spk{i % 2}/u{i}")
        paths.append(f"u{i}.wav")
    ids.append("spk0/missing")
    paths.append("missing.wav")
    manifest = io.BytesIO()
    pq.write_table(pa.table({"id": ids, "audio": paths}), manifest)
    fs.pipe_file(f"{bucket}/corpus/m.parquet", manifest.getvalue())
    return f"s3://{bucket}/corpus/m.parquet"


@pytest.fixture(scope="module")
def store():
    with s3_server() as endpoint:
        yield endpoint, _fs(endpoint)


def _env(endpoint: str | None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).strip(os.pathsep)
    env.update(RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    env.update(s3_env(endpoint or "http://unused"), HSP_LEASE_SECONDS=str(LEASE_SECONDS), **extra)
    if endpoint is None:
        env.pop("AWS_ENDPOINT_URL")
    return env


def _hsp(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args, "--num-cpus", "4", "--no-progress"]


def _probe(manifest: str, out: str, hold: Path) -> list[str]:
    return _hsp("probe", manifest, "-o", out, "--gpus", "0", "--batch-size", "1", "--hold", str(hold), "--rows-per-shard", "1")


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def _table(fs, prefix: str) -> pa.Table:
    parts = [p for p in fs.find(prefix) if p.rsplit("/", 1)[-1].startswith("part-")]
    return pa.concat_tables([pq.read_table(io.BytesIO(fs.cat_file(p))) for p in parts]) if parts else pa.table({"id": pa.array([], pa.string())})


def _download_tars(fs, bucket: str, out: str, into: Path) -> list[str]:
    into.mkdir(parents=True, exist_ok=True)
    paths = []
    for path in sorted(fs.find(f"{bucket}/{out}/shards")):
        local = into / path.rsplit("/", 1)[-1]
        local.write_bytes(fs.cat_file(path))
        paths.append(str(local))
    return paths


def _assert_exactly_once(fs, bucket: str, out: str, scratch: Path) -> pa.Table:
    """Every manifest row once in index or errors, every tar named by the index and read back whole, nothing else left."""
    import webdataset as wds

    index, errors = _table(fs, f"{bucket}/{out}/index.parquet"), _table(fs, f"{bucket}/{out}/errors.parquet")
    written, failed = index.column("id").to_pylist(), errors.column("id").to_pylist()
    assert len(written) == len(set(written)), f"duplicate rows in the index: {sorted(written)}"
    assert failed == ["spk0/missing"]
    assert sorted(written) == sorted(f"spk{i % 2}/u{i}" for i in range(ROWS))
    tars = sorted(p.rsplit("/", 1)[-1] for p in fs.find(f"{bucket}/{out}/shards"))
    assert [f"shards/{t}" for t in tars] == sorted(set(index.column("shard").to_pylist())), "orphaned or missing tar"
    local = _download_tars(fs, bucket, out, scratch / f"{bucket}-tars")
    keys = [s["__key__"] for s in wds.WebDataset(local, shardshuffle=False)] if local else []
    assert sorted(keys) == sorted(index.column("key").to_pylist())
    leftovers = [p for p in fs.find(f"{bucket}/{out}") if ".tmp-" in p or ".probe-" in p]
    assert not leftovers, leftovers
    return index


def _shard_versions(fs, bucket: str, out: str) -> dict[str, str]:
    return {p: fs.info(p)["ETag"] + str(fs.info(p)["LastModified"]) for p in fs.find(f"{bucket}/{out}/shards")}


@pytest.mark.slow
def test_prepare_to_s3_is_exactly_once_and_matches_a_local_run(store, tmp_path):
    """Endpoint from --storage-options only (no AWS_ENDPOINT_URL): the driver and the Ray workers use it."""
    endpoint, fs = store
    manifest = _corpus(fs, "match")
    options = json.dumps({"endpoint_url": endpoint})
    env = _env(None)
    remote = _run(_hsp("prepare", manifest, "-o", "s3://match/out", "--rows-per-shard", "3", "--storage-options", options), env)
    assert remote.returncode == 0, remote.stderr[-3000:]
    index = _assert_exactly_once(fs, "match", "out", tmp_path)
    local = _run(_hsp("prepare", manifest, "-o", str(tmp_path / "local"), "--rows-per-shard", "3", "--storage-options", options), env)
    assert local.returncode == 0, local.stderr[-3000:]
    local_index = pq.read_table(tmp_path / "local" / "index.parquet")
    columns = ["id", "key", "row", "duration", "source_duration"]
    assert index.select(columns).sort_by("id").to_pylist() == local_index.select(columns).sort_by("id").to_pylist()
    import webdataset as wds

    def members(tars) -> dict[str, bytes]:
        return {s["__key__"]: s["flac"] for s in wds.WebDataset(tars, shardshuffle=False)}

    remote_tars = _download_tars(fs, "match", "out", tmp_path / "remote-tars")
    local_tars = sorted(str(p) for p in (tmp_path / "local" / "shards").glob("*.tar"))
    assert members(remote_tars) == members(local_tars), "the FLAC bytes differ between the S3 and the local output"


@pytest.mark.slow
def test_second_driver_is_refused_while_the_first_runs(store, tmp_path):
    endpoint, fs = store
    manifest = _corpus(fs, "two")
    hold = tmp_path / "go"
    env = _env(endpoint)
    log = open(tmp_path / "first.log", "wb")  # noqa: SIM115 -- closed below; a pipe could fill and stall the driver
    first = subprocess.Popen(_probe(manifest, "s3://two/out", hold), env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while not fs.find("two/out/index.parquet") and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert fs.find("two/out/index.parquet"), "the first driver committed nothing: " + (tmp_path / "first.log").read_text()[-2000:]
        second = _run(_probe(manifest, "s3://two/out", hold), env)  # the same command, while the first holds its lease
        assert second.returncode == 1
        line = second.stderr.strip().splitlines()[-1]
        assert line.startswith("Error: another run is writing to s3://two/out right now") and "Traceback" not in second.stderr
        hold.touch()
        assert first.wait(timeout=240) == 0, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
        log.close()
    _assert_exactly_once(fs, "two", "out", tmp_path)


def _alive(process) -> bool:
    try:
        return process.is_running()
    except psutil.Error:
        return False


@pytest.mark.slow
def test_killed_driver_rerun_waits_for_the_lease_then_finishes_exactly_once(store, tmp_path, request):
    endpoint, fs = store
    manifest = _corpus(fs, "killed")
    hold = tmp_path / "go"
    env = _env(endpoint)
    log = open(tmp_path / "first.log", "wb")  # noqa: SIM115 -- closed below
    first = subprocess.Popen(_probe(manifest, "s3://killed/out", hold), env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while not fs.find("killed/out/index.parquet") and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert fs.find("killed/out/index.parquet"), "the first driver committed nothing: " + (tmp_path / "first.log").read_text()[-2000:]
        orphans = psutil.Process(first.pid).children(recursive=True)  # its local Ray: killed at the end
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
        log.close()
    request.addfinalizer(lambda: [p.kill() for p in orphans if _alive(p)])
    committed = _shard_versions(fs, "killed", "out")
    hold.touch()
    # at once: the killed driver's lease is still live, a new driver is refused
    from pipeline.io.lease import LeaseConfig, LeaseHeldError, RunLease
    from pipeline.io.object_store import S3ConditionalStore

    lease = json.loads(fs.cat_file("killed/out/_state/lease.json"))
    with pytest.raises(LeaseHeldError, match="another run is writing to s3://killed/out right now"):
        RunLease(S3ConditionalStore(fs), "killed/out/_state/lease.json", "s3://killed/out", "new", LeaseConfig(LEASE_SECONDS)).acquire()
    time.sleep(max(0.0, lease["expires"] - time.time()) + 0.5)
    done = len(fs.find("killed/out/index.parquet"))  # parts of one row each (a sample or an error)
    assert 1 <= done < ROWS + 1, "the kill came after the end"
    rerun = _run(_probe(manifest, "s3://killed/out", hold), env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{done} already done, {ROWS + 1 - done} to do" in rerun.stderr
    _assert_exactly_once(fs, "killed", "out", tmp_path)
    after = _shard_versions(fs, "killed", "out")
    assert {p: after.get(p) for p in committed} == committed, "a finished shard was rewritten or removed"


def test_store_ignoring_conditional_writes_is_refused(tmp_path):
    with s3_server(ignore_conditions=True) as endpoint:
        fs = _fs(endpoint)
        manifest = _corpus(fs, "liar")
        refused = _run(_hsp("prepare", manifest, "-o", "s3://liar/out"), _env(endpoint))
        assert refused.returncode == 1
        lines = refused.stderr.strip().splitlines()
        assert lines[-1].startswith("Error: the object store of s3://liar/out ignores conditional writes"), refused.stderr[-2000:]
        assert "--unsafe-object-store-commit" in lines[-1] and "Traceback" not in refused.stderr
        assert fs.find("liar/out") == [], "the refused run wrote to the output"


@pytest.mark.slow
def test_store_ignoring_conditional_writes_runs_with_the_rename_protocol_when_asked(tmp_path):
    with s3_server(ignore_conditions=True) as endpoint:
        fs = _fs(endpoint)
        manifest = _corpus(fs, "liar")
        command = _hsp("prepare", manifest, "-o", "s3://liar/out", "--unsafe-object-store-commit", "--rows-per-shard", "4")
        unsafe = _run(command, _env(endpoint))
        assert unsafe.returncode == 0, unsafe.stderr[-3000:]
        _assert_exactly_once(fs, "liar", "out", tmp_path)
        assert not fs.find("liar/out/_state/lease.json"), "the rename protocol holds no lease"
