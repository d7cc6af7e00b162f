"""Starting or joining Ray, and fitting stage resources to the cluster that is really there.

Ray waits forever for resources that do not exist (a `num_gpus` stage on a CPU-only cluster
hangs silently), so every stage's request is checked against the cluster before it starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import site
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import ray

from pipeline.engine.stage import Stage
from pipeline.errors import ClusterError

log = logging.getLogger(__name__)


class ResourceError(ClusterError):
    """A stage asks for resources the cluster cannot provide."""


class RayConnectError(ClusterError):
    """The Ray cluster at `--address` cannot be joined: unreachable, or it refuses our authentication."""


AUTH_MODE_VARIABLE = "RAY_AUTH_MODE"
_TOKEN_SOURCES = "RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token; `ray get-auth-token` on the head node prints it"
_HOST_PORT = re.compile(r"^(?P<host>[^:/\s]+|\[[0-9a-fA-F:]+\]):(?P<port>\d+)$")


def joins_cluster(address: str | None) -> bool:
    """True when a run joins an existing cluster (`--address` or RAY_ADDRESS) instead of starting a local Ray."""
    return bool(address or os.environ.get("RAY_ADDRESS"))


def _auth_refused_message(address: str) -> str:
    mode = os.environ.get(AUTH_MODE_VARIABLE)
    if mode is None or mode.lower() != "token":
        state = "is not set" if mode is None else f"is {mode!r}"
        return (
            f"the Ray cluster at {address} requires token authentication and {AUTH_MODE_VARIABLE} {state}: "
            f"set {AUTH_MODE_VARIABLE}=token and give this machine the cluster's token ({_TOKEN_SOURCES}), then re-run"
        )
    return (
        f"the Ray cluster at {address} refused this machine's authentication token: "
        f"give it the cluster's token ({_TOKEN_SOURCES}), then re-run"
    )


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 for a moment: Ray's C++ client logs each failed probe there."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_cluster_address(address: str, timeout: float = 5.0) -> None:
    """Refuse an unreachable `host:port` or a cluster that refuses our authentication, in about a second.

    Without this, `ray.init` retries for ~20 s, logging a warning per attempt, and ends in a
    ConnectionError traceback. Other address forms (``auto``, ``ray://``) are left to `ray.init`.
    """
    match = _HOST_PORT.match(address.strip())
    if match is None:
        return
    host, port = match.group("host").strip("[]"), int(match.group("port"))
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise RayConnectError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}); check --address / RAY_ADDRESS "
            "(`ray status` on the head node shows it) and that this machine can reach that port"
        ) from exc
    try:  # GcsClient is private: absent or changed in another Ray version means "no probe"
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:
        return
    try:
        with _native_stderr_silenced():
            GcsClient(address=f"{host}:{port}").cluster_id  # noqa: B018 -- the call is the probe
    except AuthenticationError as exc:
        raise RayConnectError(_auth_refused_message(address)) from exc
    except Exception:  # anything else: let ray.init try and report it
        log.debug("GCS probe of %s failed", address, exc_info=True)


def _package_root() -> str | None:
    """The source folder holding `pipeline/` when the project is not installed (workers need it)."""
    root = Path(__file__).resolve().parents[2]  # pipeline/engine/ray_env.py -> the folder holding pipeline/
    installed = any(str(root).startswith(p) for p in [*site.getsitepackages(), site.getusersitepackages()])
    return None if installed else str(root)


def _submitted_job_ships_code() -> bool:
    """True inside `ray job submit` whose runtime env already brings the code (working_dir, py_modules, PYTHONPATH).

    Ray merges the job's runtime env with the driver's and refuses conflicting keys, so the
    driver then adds nothing of its own.
    """
    raw = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if not raw:
        return False
    try:
        runtime_env = json.loads(raw).get("runtime_env") or {}
    except (ValueError, AttributeError):
        return False
    return bool(runtime_env.get("working_dir") or runtime_env.get("py_modules") or "PYTHONPATH" in (runtime_env.get("env_vars") or {}))


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join `address` (or RAY_ADDRESS) or start a local Ray on loopback. Returns True if we started it."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    runtime_env = {}
    if (root := _package_root()) is not None and not _submitted_job_ships_code():
        paths = [root, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}
    from pipeline.io.storage import STORAGE_OPTIONS_ENV

    # --storage-options reach the workers of a joined cluster too (a submitted job sets its own env_vars)
    if os.environ.get(STORAGE_OPTIONS_ENV) and not _submitted_job_ships_code():
        runtime_env.setdefault("env_vars", {})[STORAGE_OPTIONS_ENV] = os.environ[STORAGE_OPTIONS_ENV]
    if address:
        check_cluster_address(address)
        try:
            ray.init(address=address, runtime_env=runtime_env or None, logging_level=logging.WARNING)
        except ConnectionError as exc:
            if "Authentication" in _exception_text(exc):
                raise RayConnectError(_auth_refused_message(address)) from exc
            raise RayConnectError(f"cannot join the Ray cluster at {address}: {' '.join(str(exc).split())}; check --address / RAY_ADDRESS") from exc
        return True
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # A local cluster needs a few logical CPUs for Ray Data's operators to make progress together.
    cpus = num_cpus or max(4, os.cpu_count() or 1)
    for attempt in (1, 2):
        try:
            ray.init(
                num_cpus=cpus,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                runtime_env=runtime_env or None,
                logging_level=logging.WARNING,
                log_to_driver=True,
            )
            return True
        except Exception as exc:  # Ray gives its raylet a fixed 30 s to register; a busy machine can miss it
            if attempt == 2 or "timed out during startup" not in str(exc):
                raise
            log.warning("local Ray did not start in time (%s); retrying once", exc)
            ray.shutdown()
    return True


def _exception_text(exc: BaseException) -> str:
    parts, current = [], exc
    while current is not None and len(parts) < 10:
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def autoscaler_max_resources() -> dict[str, float]:
    """What the autoscaler could grow the cluster to (e.g. {"GPU": 8.0}); {} without an autoscaler."""
    try:
        from ray._private.state import state

        return {k: float(v) for k, v in (state.get_max_resources_from_cluster_config() or {}).items()}
    except Exception:  # private API: absent or changed in another Ray version means "no autoscaler known"
        log.debug("no autoscaler resource limits available", exc_info=True)
        return {}


_gpu_request_stands = False  # True from this driver's request_resources call until release_gpu_request


def wait_for_gpus(stages: list[Stage], seconds: float, poll: float = 2.0) -> list[str]:
    """On a cluster with no GPU yet, ask the autoscaler for the GPU stages' GPUs and wait up to `seconds`.

    For clusters whose GPU workers scale from zero (cluster.yaml: min_workers: 0): without this,
    a job started before any GPU node is up would run its GPU stages on CPU (or fail with
    --device cuda). The request stands until `release_gpu_request` (the runner calls it when the
    job ends, however it ends), else the autoscaler would keep the GPU nodes up. Returns notes for the plan.
    """
    global _gpu_request_stands
    wanted = max((stage.resources.num_gpus * stage.resources.actors for stage in stages), default=0.0)
    if seconds <= 0 or wanted <= 0 or float(ray.cluster_resources().get("GPU", 0.0)) > 0:
        return []
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=[{"GPU": 1.0}] * max(1, math.ceil(wanted)))
    _gpu_request_stands = True
    print(f"no GPU in the cluster yet: asked the autoscaler for {math.ceil(wanted)} GPU(s), waiting up to {seconds:g} s", file=sys.stderr)
    deadline = time.time() + seconds
    while time.time() < deadline:
        if (gpus := float(ray.cluster_resources().get("GPU", 0.0))) > 0:
            return [f"waited {seconds - (deadline - time.time()):.0f} s for GPU workers: {gpus:g} GPU(s) up"]
        time.sleep(poll)
    return [f"no GPU worker came up within {seconds:g} s"]


def release_gpu_request() -> None:
    """Withdraw this driver's standing autoscaler request (`wait_for_gpus`), so idle GPU nodes can go.

    `request_resources` requests stand until replaced; an empty request replaces it (Ray 2.60:
    `request_resources(num_cpus=0, bundles=[])`). A no-op when nothing was requested.
    """
    global _gpu_request_stands
    if not _gpu_request_stands:
        return
    _gpu_request_stands = False
    from ray.autoscaler.sdk import request_resources

    try:
        request_resources(num_cpus=0, bundles=[])
    except Exception:  # the job's own outcome matters more than this hint to the autoscaler
        log.warning("could not withdraw the autoscaler request for GPUs; idle GPU nodes stay up until it is replaced", exc_info=True)


def one_gpu_per_actor(stage: Stage) -> str | None:
    """Turn a request of k > 1 whole GPUs per actor into k times the actors with one GPU each.

    A model stage runs on one device (torch's default, the first GPU Ray assigned), so the other
    k - 1 GPUs of such an actor would sit idle. Returns the plan note, or None when nothing changed.
    A fraction above 1 (1.5 GPUs) is refused: Ray accepts fractions up to 1 and whole numbers only.
    """
    res = stage.resources
    if res.num_gpus <= 1:
        return None
    if res.num_gpus != int(res.num_gpus):
        raise ResourceError(f"stage '{stage.name}' asks for {res.num_gpus:g} GPUs per actor: give a fraction <= 1 "
                            "(actors share a GPU) or a whole number")
    k = int(res.num_gpus)
    if not stage.stateful:
        stage.resources = dataclasses.replace(res, num_gpus=1.0)
        return f"stage '{stage.name}': a task uses one GPU, so num_gpus={k} runs as num_gpus=1 per task"
    stage.resources = dataclasses.replace(res, num_gpus=1.0, actors=res.actors * k)
    return (f"stage '{stage.name}': a model stage runs on one GPU, so {res.actors} actor(s) x {k} GPUs run as "
            f"{res.actors * k} actors x 1 GPU (each with num_cpus={res.num_cpus:g})")


def fit_stage_resources(stages: list[Stage], device: str = "auto") -> list[str]:
    """Check GPU requests against the cluster; fall back to CPU (device=auto) or fail (device=cuda).

    GPUs the autoscaler can still add (cluster.yaml's GPU node types x max_workers) count as
    available: a cluster that scales GPU workers from zero keeps its GPU stages on GPU.
    An actor asking for k > 1 GPUs becomes k actors with one each (`one_gpu_per_actor`).
    Returns human-readable notes about what was changed, for the run plan.
    """
    total = ray.cluster_resources()
    ceiling = autoscaler_max_resources()
    gpus_now = float(total.get("GPU", 0.0))
    gpus = max(gpus_now, ceiling.get("GPU", 0.0))
    cpus = max(float(total.get("CPU", 0.0)), ceiling.get("CPU", 0.0))
    notes: list[str] = []
    if gpus > gpus_now and any(stage.resources.num_gpus > 0 for stage in stages):
        notes.append(f"the cluster has {gpus_now:g} GPU(s) now; the autoscaler can add up to {gpus:g}")
    for stage in stages:
        if device != "cpu" and gpus > 0 and (note := one_gpu_per_actor(stage)) is not None:
            notes.append(note)
        res = stage.resources
        if device == "cpu" and res.num_gpus > 0:
            notes.append(f"stage '{stage.name}': --device cpu, running on CPU instead of {res.num_gpus:g} GPU(s) per actor")
            res.num_gpus = 0.0
        elif res.num_gpus > 0 and gpus == 0:
            if device == "cuda":
                raise ResourceError(
                    f"stage '{stage.name}' needs {res.num_gpus:g} GPU(s) per actor but the Ray cluster has no GPU; "
                    "start GPU workers, or use --device cpu / --device auto to run it on CPU"
                )
            notes.append(f"stage '{stage.name}': the cluster has no GPU, running on CPU (slower)")
            res.num_gpus = 0.0
        elif res.num_gpus > 0 and res.num_gpus * 1 > gpus:
            raise ResourceError(
                f"stage '{stage.name}' asks for {res.num_gpus:g} GPU(s) per actor; the cluster has {gpus:g}"
            )
        elif res.num_gpus > 0 and res.num_gpus * res.actors > gpus:
            fitted = max(1, int(gpus // res.num_gpus))
            notes.append(f"stage '{stage.name}': {res.actors} actors x {res.num_gpus:g} GPU do not fit in {gpus:g} GPU(s); using {fitted}")
            res.actors = fitted
        if res.num_cpus > cpus:
            raise ResourceError(f"stage '{stage.name}' asks for {res.num_cpus:g} CPUs per task; the cluster has {cpus:g}")
    return notes


