"""Exports commit files by rename: a killed export leaves only whole files, and a re-run gives the same bytes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.export import commit
from pipeline.export.commit import ExportDir
from pipeline.export.errors import ExportError
from pipeline.export.huggingface import export_huggingface
from pipeline.export.lhotse_manifest import export_lhotse_manifest
from pipeline.export.nemo import export_nemo
from pipeline.export.options import HuggingFaceOptions, LhotseManifestOptions, NemoOptions, SharOptions
from pipeline.export.shar import export_shar
from pipeline.export.testing import synthetic_output
from tests.conftest import REPO_ROOT

# (function's module and name, options class, options): small shards, so an export commits many files
FORMATS = {
    "shar": ("pipeline.export.shar", "export_shar", SharOptions, {"shard_size": 4}),
    "lhotse": ("pipeline.export.lhotse_manifest", "export_lhotse_manifest", LhotseManifestOptions, {}),
    "nemo": ("pipeline.export.nemo", "export_nemo", NemoOptions, {}),
    "nemo_tarred": ("pipeline.export.nemo", "export_nemo", NemoOptions, {"tarred": True, "num_shards": 6}),
    "huggingface": ("pipeline.export.huggingface", "export_huggingface", HuggingFaceOptions, {"max_shard_bytes": 8_000, "rows_per_group": 3}),
}

# Runs one export and SIGKILLs itself at the k-th commit: the file is complete in staging, not renamed.
CHILD = """
import importlib, json, os, signal, sys
import pipeline.export.commit as commit
module, function, options_class, options, output, to, kill_at = json.loads(sys.argv[1])
real, calls = commit._rename, [0]
def rename(src, dst):
    calls[0] += 1
    if calls[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
commit._rename = rename
opts = getattr(importlib.import_module("pipeline.export.options"), options_class)(**options)
getattr(importlib.import_module(module), function)(output, to, opts, progress=False)
"""


def _snapshot(*folders: Path) -> dict[str, bytes]:
    """Every file under `folders` except staging folders: relative name -> bytes."""
    files = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")) if folder.exists() else []:
            name = f"{folder.name}/{path.relative_to(folder).as_posix()}"
            if path.is_file() and ".tmp-" not in name and not path.name.endswith(".lock"):
                files[name] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def kill_out(tmp_path_factory) -> Path:
    return synthetic_output(tmp_path_factory.mktemp("kill") / "out", 36, rows_per_part=10, seconds=0.2)


# the Lhotse manifest export commits like the NeMo plain one (audio files, then manifests) and costs
# a second lhotse import in a child: slow suite only
@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.slow) if k == "lhotse" else k for k in FORMATS])
def test_an_export_killed_mid_way_leaves_whole_files_and_its_rerun_writes_the_same_bytes(tmp_path, kill_out, kind, monkeypatch):
    module, function, options_class, options = FORMATS[kind]
    run = getattr(__import__(module, fromlist=[function]), function)
    to = tmp_path / "export"
    folders = (to, tmp_path / ".export.export")  # the Shar report lives beside DIR
    renames = []
    real = commit._rename
    monkeypatch.setattr(commit, "_rename", lambda src, dst: (renames.append(dst), real(src, dst)))
    run(kill_out, to, options_class(**options), progress=False)
    monkeypatch.setattr(commit, "_rename", real)
    clean = _snapshot(*folders)
    commits = len(renames)  # every file, export.json last
    assert commits >= 6 and len(clean) == commits, renames
    shutil.rmtree(to)
    shutil.rmtree(folders[1], ignore_errors=True)

    kill_at = commits // 2
    argv = json.dumps([module, function, options_class.__name__, options, str(kill_out), str(to), kill_at])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run([sys.executable, "-c", CHILD, argv], env=env, capture_output=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]

    killed = _snapshot(*folders)
    assert not any(name.endswith("export.json") for name in killed)  # not complete, and it says so
    assert len(killed) == kill_at - 1 > 0
    for name, data in killed.items():  # every file there is whole: byte-equal to the clean export's
        assert clean[name] == data, name
    assert list(folders[0 if kind != "shar" else 1].glob(".tmp-*"))  # the staging of the killed run

    run(kill_out, to, options_class(**options), progress=False)
    assert _snapshot(*folders) == clean
    assert not list(to.rglob(".tmp-*")) and not list(folders[1].glob(".tmp-*"))


def test_a_rerun_that_writes_less_removes_what_the_earlier_export_left(tmp_path, kill_out):
    to = tmp_path / "nemo"
    export_nemo(kill_out, to, NemoOptions(tarred=True, num_shards=5), progress=False)
    result = export_nemo(kill_out, to, NemoOptions(tarred=True, num_shards=2), progress=False)
    assert sorted(p.name for p in to.glob("*.tar")) == ["audio_0.tar", "audio_1.tar"]
    report = json.loads((to / "export.json").read_text())
    assert report["files"] == ["audio_0.tar", "audio_1.tar", "tarred_audio_manifest.json"] == result.files
    assert report["format"] == "nemo_tarred" and report["samples"] == result.samples == 29

    plain = tmp_path / "plain"
    assert export_nemo(kill_out, plain, NemoOptions(include_failed=True), progress=False).details["audio_files"] == 36
    result = export_nemo(kill_out, plain, progress=False)  # per-sample files: unlisted, swept by age
    keys = {json.loads(line)["audio_filepath"] for line in (plain / "manifest.json").read_text().splitlines()}
    assert {str(p) for p in (plain / "audio").iterdir()} == keys and len(keys) == result.details["audio_files"] == 29


def test_a_folder_holding_another_export_or_in_use_is_refused(tmp_path, kill_out):
    export_huggingface(kill_out, tmp_path / "hf", progress=False)
    with pytest.raises(ExportError, match="holds a 'huggingface' export"):
        export_lhotse_manifest(kill_out, tmp_path / "hf", progress=False)
    with ExportDir(tmp_path / "busy", "shar", sidecar=True), pytest.raises(ExportError, match="another export is writing"):
        export_shar(kill_out, tmp_path / "busy", progress=False)
    with pytest.raises(ExportError, match="overlaps the job output"):
        export_nemo(kill_out, kill_out / "exported", progress=False)
