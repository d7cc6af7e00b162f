"""The run lock on object stores: a lease object, created exclusively, renewed by the driver.

A local output is locked with `flock`; an object store has no locks, so the driver holds
``OUT/_state/lease.json`` instead: ``{"run_id", "host", "pid", "expires", "ttl_seconds"}``.

- acquire: exclusive create. If a lease exists and has not expired, the run is refused with who
  holds it and when it expires; an expired (or released) lease is taken over by compare-and-swap
  on the ETag that was read, so of two drivers taking over at once exactly one wins.
- renew: every ttl/6 seconds, compare-and-swap on the lease's own last ETag. A failed swap means
  another driver took the lease over (this one stalled past expiry): the lease is lost, the run's
  writers already refuse to commit (see `writer_problem`) and the driver stops with a message.
- release: at the end of the run, a compare-and-swap to an expired record, so the next run takes it
  at once (a plain delete could remove a lease another driver took over).
- writers (Ray tasks) check the lease before committing a part: it must still name their run and
  be valid for at least half its time to live. A driver killed without releasing leaves a lease
  that expires after ttl seconds; its writers stop committing ttl/2 before that, so by the time a
  new driver takes over and cleans up uncommitted files, no old writer can still commit.

Clocks of the machines involved must agree to well within ttl/2 (30 s by default): NTP does.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from pipeline.errors import OutputError
from pipeline.io.object_store import S3ConditionalStore

LEASE_NAME = "lease.json"
LEASE_SECONDS_ENV = "HSP_LEASE_SECONDS"


class LeaseHeldError(OutputError):
    """Another run holds the output's lease (it is running, or was killed less than a lease time ago)."""


class LeaseLostError(OutputError):
    """This run's lease was taken over by another run (this driver stalled past the lease's expiry)."""


@dataclass(frozen=True)
class LeaseConfig:
    """Lease timing: `ttl_seconds` is how long a lease holds without renewal (env HSP_LEASE_SECONDS overrides)."""

    ttl_seconds: float = 60.0
    renewals_per_ttl: int = 6  # renew every ttl/6: five renewals can fail before the writers stop

    @classmethod
    def from_env(cls) -> LeaseConfig:
        raw = os.environ.get(LEASE_SECONDS_ENV)
        if not raw:
            return cls()
        try:
            ttl = float(raw)
        except ValueError:
            ttl = 0.0
        if ttl < 1.0:
            raise OutputError(f"{LEASE_SECONDS_ENV}={raw!r} is not a lease time in seconds (>= 1); unset it for the default {cls.ttl_seconds:g}")
        return cls(ttl_seconds=ttl)


def writer_problem(record: dict[str, Any] | None, run_id: str, now: float | None = None) -> str | None:
    """Why a writer of `run_id` must not commit under this lease record; None when it may."""
    now = time.time() if now is None else now
    if record is None:
        return "the output has no run lease"
    if record.get("run_id") != run_id:
        return f"run {record.get('run_id')} took the output's lease over"
    margin = float(record.get("ttl_seconds", LeaseConfig.ttl_seconds)) / 2
    if float(record.get("expires", 0)) - now < margin:
        return "the run's lease is about to expire (its driver stopped renewing it)"
    return None


class RunLease:
    """The driver's side of the lease: acquire, renew in a background thread, release."""

    def __init__(self, store: S3ConditionalStore, path: str, root: str, run_id: str, config: LeaseConfig | None = None) -> None:
        self.store = store
        self.path = path
        self.root = root
        self.run_id = run_id
        self.config = config or LeaseConfig.from_env()
        self.version: str | None = None
        self.taken_over: dict[str, Any] | None = None  # the expired lease this run replaced
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _record(self, expires: float | None = None) -> bytes:
        now = time.time()
        record = {
            "run_id": self.run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "renewed": now,
            "expires": now + self.config.ttl_seconds if expires is None else expires,
            "ttl_seconds": self.config.ttl_seconds,
        }
        return json.dumps(record, sort_keys=True).encode("utf-8")

    def acquire(self) -> None:
        """Take the lease, or raise LeaseHeldError naming the run that holds it."""
        for _ in range(5):
            version = self.store.create(self.path, self._record())
            if version:
                self.version = version
                return
            current = self.store.read(self.path)
            if current is None:
                continue  # released and deleted between the two requests: create again
            record = _parse(current.data)
            if record.get("run_id") == self.run_id:  # our own create, retried after a lost answer
                self.version = current.version
                return
            remaining = float(record.get("expires", 0)) - time.time()
            if remaining > 0:
                raise LeaseHeldError(
                    f"another run is writing to {self.root} right now ({_holder(record)}, its lease expires in "
                    f"{remaining:.0f} s unless renewed); wait for it to finish, or, if it was killed, re-run the "
                    f"same command after its lease expired"
                )
            version = self.store.replace(self.path, self._record(), current.version)
            if version:
                self.version = version
                self.taken_over = record
                return
        raise LeaseHeldError(f"another run took the lease of {self.root} at the same moment; wait for it to finish or retry")

    def start_renewing(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, name="hsp-lease", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        interval = self.config.ttl_seconds / self.config.renewals_per_ttl
        while not self._stop.wait(interval):
            try:
                self.renew()
            except OSError:
                continue  # a failed request: the next renewal tries again (the lease lasts ttl)
            if self.lost:
                return

    def renew(self) -> None:
        with self._lock:
            if self.lost or self.version is None:
                return
            version = self.store.replace(self.path, self._record(), self.version)
            if version:
                self.version = version
            else:
                self.lost = f"run {self.run_id} lost the lease of {self.root} to another run (this driver was not heard from for a lease time)"

    def check(self) -> None:
        """Raise LeaseLostError when the lease was taken over."""
        if self.lost:
            raise LeaseLostError(f"{self.lost}; this run's writers stopped committing; the other run finishes the output")

    def release(self) -> None:
        """Stop renewing and hand the lease back (an expired record), unless it was lost."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            if self.lost or self.version is None:
                return
            if not self.store.replace(self.path, self._record(expires=0.0), self.version):
                self.lost = f"run {self.run_id} lost the lease of {self.root} to another run"
            self.version = None


def read_lease(store: S3ConditionalStore, path: str) -> dict[str, Any] | None:
    current = store.read(path)
    return None if current is None else _parse(current.data)


def _parse(data: bytes) -> dict[str, Any]:
    try:
        record = json.loads(data)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _holder(record: dict[str, Any]) -> str:
    return f"run {record.get('run_id', '?')} on host {record.get('host', '?')}, pid {record.get('pid', '?')}"
