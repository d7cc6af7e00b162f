"""`hsp upsample --layout mirror`: someone else's archive comes back as the same archive at the new rate.

Input tars are written by webdataset's own `TarWriter` and by Python's `tarfile` (dotted and nested
keys, mixed wav/flac, txt/json companions, a corrupt member, an unsafe key, a link, a loose file);
the output is read back with `webdataset.WebDataset` and joined by key against the input. Real
SpeechSR weights (24k: the faster variant), real local Ray.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import webdataset as wds
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.engine.job import RunOptions
from pipeline.engine.mirror_runner import run_mirror_job
from pipeline.io.shards import AUDIO_EXTENSIONS
from pipeline.io.tar_plan import mirror_part
from pipeline.report.inspect import inspect_output
from pipeline.upsample import UpsampleConfig, upsample_job
from tests.conftest import REPO_ROOT
from tests.pipeline.conftest import tone, write_manifest
from tests.pipeline.engine.test_kill_resume import _env, _reap_later, _reap_orphans

__all__ = ["_reap_orphans"]  # kills the Ray processes a SIGKILLed driver leaves (the kill test's fixture)


@pytest.fixture(autouse=True)
def _weights(reference_dir, monkeypatch):
    monkeypatch.setenv("HSP_WEIGHTS_DIR", str(reference_dir / "weights"))
    monkeypatch.setenv("HSP_CACHE_DIR", "/nonexistent-no-downloads")


def _audio(seconds: float, fmt: str, freq: float = 220.0) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(seconds, 16000, freq=freq), 16000, format=fmt)
    return buffer.getvalue()


def webdataset_tar(path: Path) -> Path:
    """libri-style shard by webdataset's TarWriter: dotted folder keys, wav or flac, txt + json, two audio, none."""
    with wds.TarWriter(str(path)) as writer:
        for i in range(3):
            writer.write({"__key__": f"spk0/chapter.0/utt_{i:03d}", "txt": f"text {i}", "json": {"speaker": "spk0", "i": i},
                          ("wav" if i % 2 == 0 else "flac"): _audio(0.2, "WAV" if i % 2 == 0 else "FLAC", 200 + 50 * i)})
        writer.write({"__key__": "spk0/chapter.0/both", "wav": _audio(0.1, "WAV"), "flac": _audio(0.15, "FLAC", 330), "txt": "both"})
        writer.write({"__key__": "spk0/chapter.0/silent_text", "txt": "no audio", "json": {"x": 1}})
    return path


def tarfile_tar(path: Path) -> Path:
    """A shard by tarfile: dotted keys, a corrupt flac, an unsafe key, a symlink, a loose README."""
    with tarfile.open(path, "w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1234
            tar.addfile(info, io.BytesIO(data))

        add("a.b/c.d/x1.flac", _audio(0.2, "FLAC"))
        add("a.b/c.d/x1.txt", b"x1")
        add("bad.flac", b"fLaC" + bytes(range(256)) * 2)  # corrupt member
        add("bad.txt", b"bad")
        add("../evil.wav", _audio(0.1, "WAV"))
        add("README", b"readme")
        link = tarfile.TarInfo("linked.wav")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        add("z.wav", _audio(0.1, "WAV", 440))
        add("z.seg.npy", b"\x93NUMPY-ish")
    return path


def _samples(path: Path) -> list[dict]:
    return list(wds.WebDataset(str(path), shardshuffle=False, empty_check=False))


def _names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return [m.name for m in tar.getmembers() if m.isfile()]


REFUSED = {"libri-000001.tar/bad": "AudioError", "libri-000001.tar/../evil": "UnsafeKey", "libri-000001.tar/linked": "LinkMember"}


def _assert_mirror(source: Path, mirrored: Path, refused_keys: set[str], rate: int, renamed: dict[str, str] | None = None) -> None:
    """Same keys in the same order (less refused), companions byte-identical, audio at `rate` of length 1.5 T."""
    renamed = renamed or {}
    inputs = [s for s in _samples(source) if s["__key__"] not in refused_keys]
    outputs = _samples(mirrored)
    assert [s["__key__"] for s in outputs] == [s["__key__"] for s in inputs]
    for before, after in zip(inputs, outputs, strict=True):
        exts = {k for k in before if not k.startswith("__")}
        assert {k for k in after if not k.startswith("__")} == {renamed.get(e, e) for e in exts}, before["__key__"]
        for ext in exts:
            if ext in AUDIO_EXTENSIONS and ext in renamed.get("__upsampled__", AUDIO_EXTENSIONS):
                audio, out_rate = sf.read(io.BytesIO(after[renamed.get(ext, ext)]))
                n16 = len(sf.read(io.BytesIO(before[ext]))[0])
                assert out_rate == rate and len(audio) == int(1.5 * n16), (before["__key__"], ext)
            else:
                assert after[ext] == before[ext], (before["__key__"], ext)  # byte-identical


def test_mirror_24k_same_archive_then_resume_redoes_only_unfinished(tmp_path, ray_local):
    d = tmp_path / "in"
    d.mkdir()
    webdataset_tar(d / "libri-000000.tar")
    tarfile_tar(d / "libri-000001.tar")
    out = tmp_path / "out"
    spec = f"{d}/libri-{{000000..000001}}.tar"
    summary = run_mirror_job(upsample_job(UpsampleConfig(sample_rate=24000, layout="mirror")), spec, out, RunOptions(progress=False))

    assert sorted(p.name for p in out.glob("*.tar")) == ["libri-000000.tar", "libri-000001.tar"] and not (out / "shards").exists()
    _assert_mirror(d / "libri-000000.tar", out / "libri-000000.tar", set(), 24000)
    _assert_mirror(d / "libri-000001.tar", out / "libri-000001.tar", {"bad", "../evil", "linked"}, 24000)
    assert _names(out / "libri-000000.tar") == _names(d / "libri-000000.tar")  # raw member order too
    assert _names(out / "libri-000001.tar") == ["a.b/c.d/x1.flac", "a.b/c.d/x1.txt", "README", "z.wav", "z.seg.npy"]
    wav = sf.info(io.BytesIO(_samples(out / "libri-000000.tar")[0]["wav"]))
    assert (wav.format, wav.subtype, wav.samplerate) == ("WAV", "PCM_16", 24000)  # the extension keeps its format

    index = {r["id"]: r for r in pq.read_table(out / "index.parquet").to_pylist()}
    errors = {r["id"]: r for r in pq.read_table(out / "errors.parquet").to_pylist()}
    assert {i: e["error"] for i, e in errors.items()} == REFUSED
    assert "cannot decode" in errors["libri-000001.tar/bad"]["message"] and "never rewritten" in errors["libri-000001.tar/../evil"]["message"]
    assert len(index) == 7 and summary["complete"] and summary["rows_in"] == 10 and summary["duplicates"] == []
    both = index["libri-000000.tar/spk0/chapter.0/both"]
    assert both["audio_members"] == ["flac", "wav"] and set(json.loads(both["member_facts"])) == {"flac", "wav"}
    assert both["duration"] == pytest.approx(0.25) and both["sample_rate"] == 24000 and both["shard"] == "libri-000000.tar"
    assert index["libri-000000.tar/spk0/chapter.0/silent_text"]["audio_members"] == []
    assert index["libri-000001.tar/a.b/c.d/x1"]["key"] == "a.b/c.d/x1" and index["libri-000001.tar/z"]["row"] == 4
    assert (summary["tars_done"], summary["samples_without_audio"], summary["audio_members_out"]) == (2, 1, 7)
    assert json.loads((out / "summary.json").read_text())["layout"] == "mirror"
    shards = inspect_output(str(out))["shards"]
    assert [(s["shard"], s["samples"]) for s in shards] == [("libri-000000.tar", 5), ("libri-000001.tar", 2)]

    # A crash while the second tar was being committed: its index part is missing, a temporary tar and
    # staging files of the dead run are left. The re-run redoes that tar only; the first is not touched.
    first = (out / "libri-000000.tar").stat()
    (out / "index.parquet" / f"part-{mirror_part('libri-000001.tar')}.parquet").unlink()
    (out / ".tmp-dead-libri-000001.tar").write_bytes(b"half a tar")
    (out / "_state" / "mirror" / "deadrun").mkdir(parents=True)
    resumed = run_mirror_job(upsample_job(UpsampleConfig(sample_rate=24000, layout="mirror")), spec, out, RunOptions(progress=False))
    assert resumed["tars_this_run"] == 1 and (resumed["rows_this_run"], resumed["members_this_run"]) == (5, 3) and resumed["complete"]
    after = (out / "libri-000000.tar").stat()
    assert (after.st_ino, after.st_mtime_ns) == (first.st_ino, first.st_mtime_ns), "a finished tar was rewritten"
    _assert_mirror(d / "libri-000001.tar", out / "libri-000001.tar", {"bad", "../evil", "linked"}, 24000)
    assert not list(out.rglob(".tmp-*")) and not list((out / "_state").glob("mirror/*/*"))
    ids = pq.read_table(out / "index.parquet").column("id").to_pylist() + pq.read_table(out / "errors.parquet").column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 10
    again = run_mirror_job(upsample_job(UpsampleConfig(sample_rate=24000, layout="mirror")), spec, out, RunOptions(progress=False))
    assert again["tars_this_run"] == 0 and again["complete"] and (out / "libri-000000.tar").stat().st_mtime_ns == first.st_mtime_ns


def test_mirror_cli_one_member_as_flac_from_a_list_file(tmp_path, ray_local):
    d = tmp_path / "in"
    d.mkdir()
    webdataset_tar(d / "libri-000000.tar")
    (d / "urls.txt").write_text("# one shard\nlibri-000000.tar\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["upsample", str(d / "urls.txt"), "-o", str(out), "--sr", "24000", "--layout", "mirror",
                                       "--audio-member", "wav", "--audio-ext", "flac", "--no-progress"])
    assert result.exit_code == 0, result.output
    # wav members become 24 kHz flac members in place; flac-only samples have no wav: passed through unchanged;
    # 'both' would get two .flac members: an error row naming --audio-member
    errors = pq.read_table(out / "errors.parquet").to_pylist()
    assert [(e["id"], e["error"]) for e in errors] == [("libri-000000.tar/spk0/chapter.0/both", "MemberCollision")]
    _assert_mirror(d / "libri-000000.tar", out / "libri-000000.tar", {"spk0/chapter.0/both"}, 24000,
                   renamed={"wav": "flac", "__upsampled__": ("wav",)})
    names = _names(out / "libri-000000.tar")
    assert _names(d / "libri-000000.tar")[:3] == [f"spk0/chapter.0/utt_000.{e}" for e in ("json", "txt", "wav")]
    assert names[:3] == [f"spk0/chapter.0/utt_000.{e}" for e in ("json", "txt", "flac")]  # in the wav's place
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples_without_audio"] == 2 and summary["complete"]  # utt_001 (flac only) and silent_text


def test_mirror_usage_errors(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet", {"a": {"audio": str(tmp_path / "a.wav")}})
    runner = CliRunner()
    result = runner.invoke(main, ["upsample", str(manifest), "-o", str(tmp_path / "o"), "--layout", "mirror"])
    assert result.exit_code == 2 and "--layout mirror" in result.output and "manifest" in result.output
    result = runner.invoke(main, ["upsample", str(manifest), "-o", str(tmp_path / "o"), "--audio-member", "wav"])
    assert result.exit_code == 2 and "--audio-ext and --audio-member apply to --layout mirror only" in result.output
    tarfile_tar(tmp_path / "x.tar")
    result = runner.invoke(main, ["upsample", str(tmp_path), "-o", str(tmp_path), "--layout", "mirror"])
    assert result.exit_code == 1 and "inside the output folder" in result.output
    result = runner.invoke(main, ["upsample", str(tmp_path / "x.tar"), "-o", "s3://bucket/mirror", "--layout", "mirror"])
    assert result.exit_code != 0 and "local or mounted filesystem" in result.output and "Traceback" not in result.output


def _command(spec: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "upsample", spec, "-o", str(out), "--sr", "24000", "--layout", "mirror",
            "--num-cpus", "4", "--no-progress"]


@pytest.mark.slow
def test_mirror_driver_sigkill_then_rerun_redoes_only_unfinished_tars(tmp_path, reference_dir):
    d = tmp_path / "in"
    d.mkdir()
    for shard in range(5):
        with wds.TarWriter(str(d / f"part-{shard}.tar")) as writer:
            for i in range(6):
                writer.write({"__key__": f"s{shard}.d/u_{i}", "wav": _audio(0.3, "WAV", 200 + 10 * i), "txt": f"{shard}-{i}"})
    out = tmp_path / "out"
    env = {**_env(), "HSP_WEIGHTS_DIR": str(reference_dir / "weights")}
    log = open(tmp_path / "killed.log", "wb")  # noqa: SIM115 -- closed below; a pipe could fill and stall the driver
    proc = subprocess.Popen(_command(str(d), out), env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    committed = lambda: sorted((out / "index.parquet").glob("part-*.parquet")) if (out / "index.parquet").exists() else []  # noqa: E731
    try:
        deadline = time.time() + 300
        while not committed() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the job ended before its first tar was committed"
        tree = psutil.Process(proc.pid).children(recursive=True)  # the machine dies: driver and its Ray processes
        proc.send_signal(signal.SIGKILL)
        for process in tree:
            with contextlib.suppress(psutil.Error):
                process.kill()
        _reap_later(tree)
        proc.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        log.close()
    done_parts = {p.name[len("part-"):-len(".parquet")] for p in committed()}
    finished = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*.tar") if mirror_part(p.name) in done_parts}
    assert 1 <= len(finished) < 5, "the kill came too late to test a resume"
    rerun = subprocess.run(_command(str(d), out), env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["tars_this_run"] == 5 - len(finished)
    for name, stamp in finished.items():
        stat = (out / name).stat()
        assert (stat.st_ino, stat.st_mtime_ns) == stamp, f"finished tar {name} was rewritten"
    for shard in range(5):
        _assert_mirror(d / f"part-{shard}.tar", out / f"part-{shard}.tar", set(), 24000)
    ids = pq.read_table(out / "index.parquet").column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 30 and pq.read_table(out / "errors.parquet").num_rows == 0
    assert not list(out.rglob(".tmp-*"))
