"""Kill `hsp prepare` (driver or a Ray worker) with SIGKILL at several points, re-run, check exactly-once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from tests.conftest import REPO_ROOT
from tests.pipeline.conftest import tone, write_manifest

ROWS = 60
ROWS_PER_SHARD = 4
PARTS = ROWS // ROWS_PER_SHARD


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("kill_corpus")
    cases = {}
    for i in range(ROWS):
        path = d / f"f{i:03d}.wav"
        sf.write(path, tone(6.0, 44100, freq=150 + i, channels=2), 44100)
        cases[f"spk{i % 3}/utt{i:03d}"] = {"audio": str(path)}
    cases["spk0/broken"] = {"audio": str(d / "missing.wav")}
    return write_manifest(d / "m.parquet", cases)


def _command(manifest: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "prepare", str(manifest), "-o", str(out),
            "--rows-per-shard", str(ROWS_PER_SHARD), "--num-cpus", "4", "--no-progress"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).strip(os.pathsep)
    env.update(RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    return env


def _committed(out: Path) -> list[str]:
    folder = out / "index.parquet"
    return sorted(p.name for p in folder.glob("part-*.parquet")) if folder.exists() else []


def _committed_shards(out: Path) -> dict[str, int]:
    parts = {name[len("part-"):-len(".parquet")] for name in _committed(out)}
    return {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("shard-*.tar") if p.name[6:26] in parts}


def _assert_exactly_once(manifest: Path, out: Path) -> None:
    ids = pq.read_table(manifest).column("id").to_pylist()
    written = pq.read_table(out / "index.parquet").column("id").to_pylist()
    failed = pq.read_table(out / "errors.parquet").column("id").to_pylist()
    assert len(written) == len(set(written)), "duplicate samples in the index"
    assert not set(written) & set(failed)
    assert sorted(written + failed) == sorted(ids)
    assert failed == ["spk0/broken"]
    shards_on_disk = {f"shards/{p.name}" for p in (out / "shards").iterdir()}
    assert shards_on_disk == set(pq.read_table(out / "index.parquet").column("shard").to_pylist()), "orphaned or missing tar"
    assert not [p for p in out.rglob(".tmp-*")], "temporary files left behind"
    import glob

    import webdataset as wds

    keys = [s["__key__"] for s in wds.WebDataset(sorted(glob.glob(f"{out}/shards/*.tar")), shardshuffle=False)]
    assert len(keys) == len(set(keys)) == len(written)


def _kill_when(manifest: Path, out: Path, condition, victim: str = "driver", timeout: float = 240.0) -> bool:
    """Start the job, SIGKILL the driver (or one Ray worker) once `condition(out)` holds. Returns True if killed."""
    log = open(out.parent / f"{out.name}.killed.log", "wb")  # noqa: SIM115 -- closed in finally; a pipe could fill and stall the driver
    proc = subprocess.Popen(_command(manifest, out), env=_env(), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    tree: list[psutil.Process] = []
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                return False
            if condition(out):
                tree = psutil.Process(proc.pid).children(recursive=True)
                if victim == "driver":
                    proc.send_signal(signal.SIGKILL)
                else:
                    workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if _is_busy_worker(p)]
                    if not workers:
                        time.sleep(0.01)
                        continue
                    workers[0].send_signal(signal.SIGKILL)
                proc.wait(timeout=120)
                return True
            time.sleep(0.01)
        raise AssertionError("job did not reach the kill point in time")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        _reap_later(tree)


_ORPHANS: list[psutil.Process] = []


def _reap_later(processes: list[psutil.Process]) -> None:
    """Remember the killed driver's Ray processes; agents it leaves behind are killed at module end."""
    _ORPHANS.extend(processes)


@pytest.fixture(scope="module", autouse=True)
def _reap_orphans():
    yield
    for process in _ORPHANS:
        with contextlib.suppress(psutil.Error):
            process.kill()


def _is_busy_worker(process: psutil.Process) -> bool:
    try:
        title = " ".join(process.cmdline())
    except psutil.Error:
        return False
    return title.startswith("ray::") and ("MapBatches" in title or "write_shards" in title or "decode" in title)


def _rerun(manifest: Path, out: Path) -> None:
    done = subprocess.run(_command(manifest, out), env=_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize(
    "label,condition",
    [
        ("before_first_commit", lambda out: (out / "_state" / "run.json").exists()),
        ("after_first_shard", lambda out: len(_committed(out)) >= 1),
        ("mid_job", lambda out: len(_committed(out)) >= PARTS // 2),
    ],
)
def test_driver_sigkill_then_rerun_is_exactly_once(tmp_path, corpus, label, condition):
    out = tmp_path / "out"
    killed = _kill_when(corpus, out, condition)
    before = _committed_shards(out)
    if label != "before_first_commit":
        assert killed, "job finished before the kill point; make the corpus larger"
        assert len(_committed(out)) < PARTS + 1, "the kill came too late to test a resume"
    _rerun(corpus, out)
    _assert_exactly_once(corpus, out)
    after = _committed_shards(out)
    for name, mtime in before.items():
        assert after[name] == mtime, f"finished shard {name} was rewritten"


def test_worker_sigkill_is_survived_or_resumed(tmp_path, corpus):
    out = tmp_path / "out"
    killed = _kill_when(corpus, out, lambda o: len(_committed(o)) >= 1, victim="worker")
    assert killed
    _rerun(corpus, out)  # a no-op when Ray already recovered the killed task
    _assert_exactly_once(corpus, out)
