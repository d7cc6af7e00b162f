"""Output the user cannot write, and manifests that are not Parquet: one line saying what to do, no traceback.

Real filesystems: small tmpfs mounts (full, read-only) made by the tests, which need root (skipped
otherwise). A disk that fills up midway makes a Ray worker's shard write fail with ENOSPC: the
committed parts stay, and a re-run after freeing space finishes every row exactly once.
"""

from __future__ import annotations

import errno
import os
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from click.testing import CliRunner

from pipeline.cli import EXAMPLES_DIR, main
from tests.pipeline.conftest import write_manifest

EXAMPLES = str(EXAMPLES_DIR / "examples.parquet")


@pytest.fixture()
def tmpfs(tmp_path: Path):
    """mount(name, size, read_only=False) -> a fresh tmpfs under tmp_path; unmounted at teardown."""
    mounted: list[Path] = []

    def mount(name: str, size: str, read_only: bool = False) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        target = tmp_path / name
        target.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a file into `folder` until its filesystem is full; returns it."""
    path = folder / "filler"
    block = b"\0" * (64 << 10)
    with open(path, "wb") as handle:
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return path


def assert_one_line_error(result, *fragments: str) -> str:
    """A clean exit 1 whose only error is the last line of the output, holding every fragment."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not a traceback
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert errors == [lines[-1]], result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_full_disk_at_start(tmpfs) -> None:
    disk = tmpfs("full", "256k")
    fill(disk)
    result = CliRunner().invoke(main, ["prepare", EXAMPLES, "-o", str(disk / "out"), "--no-progress"])
    assert_one_line_error(result, "no space left on the disk of the output", "re-run the same command")


def test_read_only_filesystem(tmpfs) -> None:
    disk = tmpfs("ro", "1m", read_only=True)
    result = CliRunner().invoke(main, ["prepare", EXAMPLES, "-o", str(disk / "out"), "--no-progress"])
    assert_one_line_error(result, "read-only filesystem", "pass -o a folder on a writable disk")


def test_output_path_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "out.tar"
    target.write_bytes(b"not a folder")
    result = CliRunner().invoke(main, ["prepare", EXAMPLES, "-o", str(target), "--no-progress"])
    assert_one_line_error(result, f"the output {target} is a file, not a folder", "pass -o a new folder")
    assert target.read_bytes() == b"not a folder"


def test_csv_renamed_to_parquet(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.parquet"
    manifest.write_text("id,audio\nutt1,a.wav\n")
    runner = CliRunner()
    for args in (["prepare", str(manifest), "-o", str(tmp_path / "out"), "--no-progress"], ["manifest", "validate", str(manifest)]):
        assert_one_line_error(runner.invoke(main, args), "is a CSV file, not Parquet", "pyarrow.csv", "hsp manifest build")
    assert not (tmp_path / "out").exists()


def _noise_corpus(root: Path, rows: int) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    cases = {}
    for i in range(rows):
        sf.write(root / f"n{i}.wav", (0.3 * rng.standard_normal(16000)).astype(np.float32), 16000)
        cases[f"n{i}"] = {"audio": str(root / f"n{i}.wav")}
    return write_manifest(root / "manifest.parquet", cases)


def test_disk_full_midway_keeps_committed_parts_and_resumes(tmp_path: Path, tmpfs, ray_local) -> None:
    manifest = _noise_corpus(tmp_path / "corpus", 4)
    disk = tmpfs("disk", "2m")
    out = disk / "out"
    # one actor, one row per call: parts commit one by one, and after its first row the probe holds
    # until the disk is full (no race with a fast machine or a slow one)
    hold = tmp_path / "disk-is-full"
    args = ["probe", str(manifest), "-o", str(out), "--gpus", "0", "--batch-size", "1", "--rows-per-shard", "1",
            "--block-rows", "1", "--hold", str(hold), "--no-progress"]
    filled: list[Path] = []

    def fill_after_first_commit() -> None:
        deadline = time.time() + 180
        while time.time() < deadline and not list((out / "index.parquet").glob("part-*.parquet")):
            time.sleep(0.05)
        filled.append(fill(disk))
        hold.touch()

    filler = threading.Thread(target=fill_after_first_commit, daemon=True)
    filler.start()
    result = CliRunner().invoke(main, args)
    filler.join(timeout=200)
    assert filled, "no part was committed before the disk filled"
    assert_one_line_error(result, "[probe] no space left on the disk of the output", "re-run the same command", "resumes")

    committed = {p.name: p.stat().st_mtime_ns for p in (out / "index.parquet").glob("part-*.parquet")}
    assert 1 <= len(committed) < 4
    for name in committed:  # every committed part is whole: its shard exists and reads back
        shard = out / pq.read_table(out / "index.parquet" / name).column("shard")[0].as_py()
        with tarfile.open(shard) as tar:
            assert any(m.name.endswith(".flac") for m in tar.getmembers())
    assert not [p for p in out.rglob(".tmp-*")], "a failed write left its temporary file"

    filled[0].unlink()  # free the space, run the same command again
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert f"{len(committed)} already done" in again.output
    ids = pq.read_table(out / "index.parquet").column("id").to_pylist()
    assert sorted(ids) == sorted(pq.read_table(manifest).column("id").to_pylist())  # every row exactly once
    assert {n: (out / "index.parquet" / n).stat().st_mtime_ns for n in committed} == committed  # not redone
