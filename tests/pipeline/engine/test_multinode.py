"""A real two-node Ray cluster on this machine: `ray job submit`, GPU placement, a worker node killed mid-job.

Each node lives in its own network namespace (joined by a veth pair with private addresses), so
Ray's node addresses differ, test traffic never leaves the machine, and ports cannot collide with
other Ray instances on the host. The worker advertises one fake GPU, the head none, so the GPU
stage must run on the worker. Teardown kills exactly the processes inside our namespaces
(`ip netns pids`): `ray stop` is never used, since it kills every Ray process on the host.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml

from tests.conftest import REPO_ROOT
from tests.pipeline.conftest import tone, write_manifest

pytestmark = pytest.mark.multinode

RAY = str(Path(sys.executable).with_name("ray"))
JOB_TIMEOUT = 150
WAIT_SCRIPT = """
import sys, time
from ray.job_submission import JobStatus, JobSubmissionClient
client = JobSubmissionClient(sys.argv[1])
deadline = time.time() + float(sys.argv[3])
status = client.get_job_status(sys.argv[2])
while not status.is_terminal() and time.time() < deadline:
    time.sleep(1)
    status = client.get_job_status(sys.argv[2])
print("STATUS", status.value, flush=True)
"""


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root for `ip netns` (CI runs as root)"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    probe = f"hspprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _netns_pids(ns: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


def kill_netns_processes(ns: str, timeout: float = 20.0) -> int:
    """SIGKILL every process whose network namespace is `ns` (ours alone); returns how many."""
    killed = 0
    deadline = time.time() + timeout
    while (pids := _netns_pids(ns)) and time.time() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.3)
    return killed


@dataclass
class TwoNodeCluster:
    head_ns: str
    worker_ns: str
    head_ip: str
    worker_ip: str
    tmp: Path
    env: dict[str, str]

    @property
    def dashboard(self) -> str:
        return f"http://{self.head_ip}:8265"

    def run(self, ns: str, *cmd: str, timeout: float = 120, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        env = dict(self.env, **(extra_env or {}))
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], env=env, capture_output=True, text=True, timeout=timeout)

    def start_worker(self) -> None:
        done = self.run(
            self.worker_ns, RAY, "start", f"--address={self.head_ip}:6379", f"--node-ip-address={self.worker_ip}",
            "--num-cpus=2", "--num-gpus=1", "--object-store-memory=150000000", "--disable-usage-stats",
            extra_env={"RAY_TMPDIR": str(self.tmp / "b")},
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    def submit(self, submission_id: str, spec: Path) -> None:
        # as docs/cluster.md says: the code travels as the job's working_dir (the nodes were started without
        # PYTHONPATH); inputs and outputs are on this machine's filesystem, shared by both nodes
        done = self.run(
            self.head_ns, RAY, "job", "submit", "--address", self.dashboard, "--submission-id", submission_id, "--no-wait",
            "--working-dir", str(REPO_ROOT), "--", "python", "-m", "jobs.probe", str(spec),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    def wait(self, submission_id: str, timeout: float = JOB_TIMEOUT) -> str:
        """Poll the job server until the job ends; returns SUCCEEDED, FAILED, STOPPED or TIMEOUT."""
        done = self.run(self.head_ns, sys.executable, "-c", WAIT_SCRIPT, self.dashboard, submission_id, str(timeout), timeout=timeout + 60)
        lines = [line for line in done.stdout.splitlines() if line.startswith("STATUS ")]
        assert lines, done.stdout[-2000:] + done.stderr[-2000:]
        status = lines[-1].split()[1]
        return status if status in ("SUCCEEDED", "FAILED", "STOPPED") or timeout == 0 else "TIMEOUT"

    def logs(self, submission_id: str) -> str:
        return self.run(self.head_ns, RAY, "job", "logs", "--address", self.dashboard, submission_id, timeout=60).stdout

    def stop(self, submission_id: str) -> None:
        self.run(self.head_ns, RAY, "job", "stop", "--address", self.dashboard, submission_id, timeout=60)


@pytest.fixture()
def two_nodes():
    reason = _unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"multinode test cannot run in CI: {reason}")
        pytest.skip(reason)
    tag = secrets.token_hex(3)
    subnet = 1 + secrets.randbelow(250)
    cluster = TwoNodeCluster(
        head_ns=f"hsp{tag}a", worker_ns=f"hsp{tag}b", head_ip=f"10.231.{subnet}.1", worker_ip=f"10.231.{subnet}.2",
        tmp=Path(f"/tmp/hsp-{tag}"),  # short: Ray's unix socket paths must stay under 108 bytes
        env={
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")]), "HOME": os.environ.get("HOME", "/root"),
            "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
            # not RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (set for local tests): a head started with it refuses workers
        },
    )  # fmt: skip
    veth_a, veth_b = f"hsp{tag}va", f"hsp{tag}vb"
    try:
        _ip("netns", "add", cluster.head_ns)
        _ip("netns", "add", cluster.worker_ns)
        _ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        _ip("link", "set", veth_a, "netns", cluster.head_ns)
        _ip("link", "set", veth_b, "netns", cluster.worker_ns)
        for ns, veth, ip in ((cluster.head_ns, veth_a, cluster.head_ip), (cluster.worker_ns, veth_b, cluster.worker_ip)):
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", veth)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", veth, "up")
        (cluster.tmp / "a").mkdir(parents=True)
        (cluster.tmp / "b").mkdir(parents=True)
        head = cluster.run(
            cluster.head_ns, RAY, "start", "--head", f"--node-ip-address={cluster.head_ip}", "--port=6379",
            "--num-cpus=2", "--num-gpus=0", "--object-store-memory=150000000", "--include-dashboard=true",
            f"--dashboard-host={cluster.head_ip}", "--dashboard-port=8265", "--disable-usage-stats",
            extra_env={"RAY_TMPDIR": str(cluster.tmp / "a")},
        )  # fmt: skip
        assert head.returncode == 0, head.stdout[-2000:] + head.stderr[-2000:]
        yield cluster  # the test starts the GPU worker, as an autoscaler would, once a job waits for it
    finally:
        for ns in (cluster.worker_ns, cluster.head_ns):
            kill_netns_processes(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # also removes the veth pair
        subprocess.run(["ip", "link", "del", veth_a], capture_output=True)  # only if it never moved
        shutil.rmtree(cluster.tmp, ignore_errors=True)


def _corpus(root: Path, rows: int) -> Path:
    root.mkdir(parents=True)
    cases = {}
    for i in range(rows):
        sf.write(root / f"f{i:02d}.wav", tone(0.5, 22050, freq=180 + 10 * i), 22050)
        cases[f"utt{i:02d}"] = {"audio": str(root / f"f{i:02d}.wav")}
    return write_manifest(root / "manifest.parquet", cases)


def _spec(path: Path, manifest: Path, out: Path, delay: float) -> Path:
    spec = {
        "wait_for_gpus": 120,
        "job": "probe",
        "inputs": {"manifest": str(manifest)},
        "outputs": {"output": str(out), "rows_per_shard": 2},
        "block_rows": 2,  # small blocks stream through the stages one by one: the kill lands mid-stage
        "gpus": 1,
        "delay": delay,
        # auto: the worker's GPU is Ray's fake one, which the CPU-only torch there cannot see (--device cuda
        # would stop the job in the actor); the stage still holds the GPU, as the placements show
        "run": {"device": "auto", "progress": False},
        "resources": {"placement_probe": {"num_cpus": 0.5}},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def _samples(out: Path) -> dict[str, dict]:
    samples = {}
    for shard in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    meta = json.load(io.TextIOWrapper(tar.extractfile(member)))
                    samples[member.name[: -len(".json")]] = meta
    return samples


def _assert_exactly_once(manifest: Path, out: Path) -> pq.ParquetDataset:
    expected = sorted(pq.read_table(manifest).column("id").to_pylist())
    index = pq.read_table(out / "index.parquet").column("id").to_pylist()
    errors_dir = out / "errors.parquet"
    errors = pq.read_table(errors_dir).column("id").to_pylist() if any(errors_dir.glob("*.parquet")) else []
    assert sorted(index + errors) == expected, "every manifest row exactly once in index or errors"
    assert not errors, errors
    parts = {p.name[len("part-") : -len(".parquet")] for p in (out / "index.parquet").glob("part-*.parquet")}
    shard_parts = {p.name[len("shard-") :].split(".")[0].split("-")[0] for p in (out / "shards").glob("shard-*.tar")}
    assert shard_parts == parts, "no orphan shards"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and not summary["duplicates"], summary
    return summary


def test_job_submit_gpu_placement_and_worker_loss(two_nodes: TwoNodeCluster, tmp_path: Path):
    cluster = two_nodes
    # 1) submitted while the cluster has no GPU: the job asks the autoscaler for one and waits; the
    #    worker joins (as an autoscaled GPU node would) and the GPU stage must run there
    manifest = _corpus(tmp_path / "corpus", 6)
    out = tmp_path / "out-ok"
    cluster.submit("probe-ok", _spec(tmp_path / "ok.yaml", manifest, out, delay=0.0))
    deadline = time.time() + 90
    while "asked the autoscaler" not in (logs := cluster.logs("probe-ok")) and time.time() < deadline:
        time.sleep(2)
    assert "asked the autoscaler for 1 GPU(s)" in logs, logs[-3000:]
    cluster.start_worker()
    status = cluster.wait("probe-ok")
    logs = cluster.logs("probe-ok")
    assert status == "SUCCEEDED", logs[-4000:]
    assert "waited" in logs and "for GPU workers: 1 GPU(s) up" in logs, logs[-3000:]
    print("\n".join(line for line in logs.splitlines() if line.startswith(("[probe]", "  "))))
    assert "cluster: 2 node(s), 4 CPUs, 1 GPUs" in logs, logs[-3000:]
    assert "placement_probe" in logs and "gpus=1" in logs
    _assert_exactly_once(manifest, out)
    placements = [meta["placement"] for meta in _samples(out).values()]
    assert len(placements) == 6
    for placement in placements:
        assert placement["node_ip"] == cluster.worker_ip, placement
        assert placement["gpu_ids"] == ["0"] and placement["cuda_visible_devices"] == "0", placement
    assert all(meta["compute"]["cpu_fallback"] == ["placement_probe"] for meta in _samples(out).values())

    # 2) kill the worker node (every process in its namespace) once parts are committed, then bring
    #    a replacement up, as an autoscaler would: the job recovers, or fails and a resubmission finishes
    manifest = _corpus(tmp_path / "corpus2", 16)
    out = tmp_path / "out-fault"
    spec = _spec(tmp_path / "fault.yaml", manifest, out, delay=1.0)
    cluster.submit("probe-fault", spec)
    deadline = time.time() + JOB_TIMEOUT
    while not list((out / "index.parquet").glob("part-*.parquet")) and time.time() < deadline:
        time.sleep(0.5)
    committed_before = sorted(p.name for p in (out / "index.parquet").glob("part-*.parquet"))
    assert committed_before, "no part committed before the kill: " + cluster.logs("probe-fault")[-3000:]
    assert len(committed_before) < 8, "the job finished before the kill"
    killed = kill_netns_processes(cluster.worker_ns)
    assert killed > 0
    time.sleep(10)
    while_gone = cluster.wait("probe-fault", timeout=0)  # no GPU node now: does the job fail or wait?
    cluster.start_worker()
    status = cluster.wait("probe-fault", timeout=JOB_TIMEOUT)
    outcome = {
        "status_10s_after_kill": while_gone, "first_status": status, "parts_before_kill": len(committed_before),
        "processes_killed": killed,
    }  # fmt: skip
    logs = cluster.logs("probe-fault")
    words = ("died", "dead", "restart", "retr", "lost", "unavailable", "error")
    outcome["log_lines_about_the_loss"] = [line[:300] for line in logs.splitlines() if any(w in line.lower() for w in words)][:10]
    if status != "SUCCEEDED":
        outcome["first_log_tail"] = logs[-1500:]
        if status == "TIMEOUT":
            cluster.stop("probe-fault")
            cluster.wait("probe-fault", timeout=60)
        cluster.submit("probe-fault-resume", spec)
        resumed = cluster.wait("probe-fault-resume")
        resume_logs = cluster.logs("probe-fault-resume")
        assert resumed == "SUCCEEDED", resume_logs[-4000:]
        assert "already done" in resume_logs
        outcome["resume"] = resumed
    summary = _assert_exactly_once(manifest, out)
    assert summary["samples_out"] == 16
    for name in committed_before:  # parts committed before the kill were kept, not redone
        assert (out / "index.parquet" / name).exists()
    assert all(meta["placement"]["node_ip"] == cluster.worker_ip for meta in _samples(out).values())

    # 3) resubmitting a finished job is a no-op: every row is already done, no shard is rewritten
    shards = {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("*.tar")}
    cluster.submit("probe-fault-again", spec)
    assert cluster.wait("probe-fault-again") == "SUCCEEDED"
    again = cluster.logs("probe-fault-again")
    assert "16 already done, 0 to do" in again, again[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("*.tar")} == shards
    _assert_exactly_once(manifest, out)
    print("fault outcome:", json.dumps(outcome, indent=1))
