"""`--address` of a `ray start` cluster: a refused authentication or an unreachable address is one line.

The cluster runs in its own network namespace on its loopback (127.0.0.1): no port can collide with
another Ray on this machine. Teardown kills exactly the processes inside that namespace (`ip netns
pids`); `ray stop` is never used, since it kills every Ray process on the host.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import EXAMPLES_DIR
from pipeline.engine.ray_env import RayConnectError, check_cluster_address
from tests.conftest import REPO_ROOT

RAY = str(Path(sys.executable).with_name("ray"))
HSP = [sys.executable, "-m", "pipeline.cli"]


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root for a network namespace"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    return None


def _kill_netns(ns: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), sig)
        deadline = time.time() + 5
        while pids and time.time() < deadline:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            time.sleep(0.2)
        if not pids:
            return


@pytest.fixture()
def token_cluster():
    """A `ray start --head` with token authentication (RAY_AUTH_MODE=token) on a namespace's loopback."""
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)
    tag = secrets.token_hex(3)
    ns, tmp = f"hspauth{tag}", Path(f"/tmp/hsp-auth-{tag}")  # short: Ray's unix socket paths stay under 108 bytes
    (tmp / "home").mkdir(parents=True)
    token = secrets.token_hex(32)
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")]),
        "HOME": str(tmp / "home"), "PYTHONPATH": str(REPO_ROOT), "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": str(tmp / "ray"), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }  # fmt: skip
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip("cannot create a network namespace")
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)

        def run(*cmd: str, timeout: float = 240, **extra: str) -> subprocess.CompletedProcess:
            return subprocess.run(["ip", "netns", "exec", ns, *cmd], env=dict(env, **extra), capture_output=True, text=True, timeout=timeout)

        head = run(
            RAY, "start", "--head", "--node-ip-address=127.0.0.1", "--port=6379", "--num-cpus=4",
            "--include-dashboard=false", "--disable-usage-stats", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token,
        )  # fmt: skip
        assert head.returncode == 0, head.stdout[-2000:] + head.stderr[-2000:]
        yield run, token, tmp
    finally:
        _kill_netns(ns)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def test_address_without_auth_mode_says_what_to_set(token_cluster) -> None:
    run, token, tmp = token_cluster
    command = [*HSP, "prepare", str(EXAMPLES_DIR / "examples.parquet"), "--address", "127.0.0.1:6379", "--no-progress"]
    refused = run(*command, "-o", str(tmp / "out-refused"), timeout=120)  # RAY_AUTH_MODE not set
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr, refused.stderr[-3000:]
    assert _error_lines(refused.stderr) == [refused.stderr.strip().splitlines()[-1]]
    message = _error_lines(refused.stderr)[0]
    assert "requires token authentication and RAY_AUTH_MODE is not set: set RAY_AUTH_MODE=token" in message
    assert "RAY_AUTH_TOKEN" in message
    # following the advice joins the cluster and the job finishes
    done = run(*command, "-o", str(tmp / "out"), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    assert done.returncode == 0, done.stderr[-3000:]
    assert pq.read_table(tmp / "out" / "index.parquet").num_rows == 7


def test_unreachable_address_is_one_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket is closed
    with pytest.raises(RayConnectError, match=rf"no Ray cluster answers at 127\.0\.0\.1:{port}") as info:
        check_cluster_address(f"127.0.0.1:{port}")
    assert "\n" not in str(info.value)
