"""An output written by a newer version (schema_version 999) is refused, in one line, by every reader:
resume, inspect, report, the exports and tar input; nothing is read or written past the refusal."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.export.testing import synthetic_output, tone_flac
from pipeline.io.output import OutputVersionError
from tests.pipeline.conftest import tone

FUTURE = 999


@pytest.fixture
def future_output(tmp_path: Path) -> Path:
    root = synthetic_output(tmp_path / "future", 3, errors=0)
    record = json.loads((root / "job.json").read_text())
    (root / "job.json").write_text(json.dumps({**record, "schema_version": FUTURE}))
    return root


def _refused(result, root: Path) -> None:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: ") and f"schema version {FUTURE}" in lines[-1] and "upgrade" in lines[-1]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("argv", [
    ["inspect", "{out}"],
    ["report", "{out}", "-o", "{tmp}/report"],
    ["export", "upstream", "{out}", "--to", "{tmp}/upstream"],
    ["export", "nemo", "{out}", "--to", "{tmp}/nemo.jsonl"],
    ["export", "lhotse", "{out}", "--to", "{tmp}/lhotse"],
], ids=lambda argv: "-".join(a for a in argv if not a.startswith(("{", "-"))))
def test_readers_refuse_a_future_output(future_output: Path, tmp_path: Path, argv: list[str]) -> None:
    argv = [a.format(out=future_output, tmp=tmp_path) for a in argv]
    _refused(CliRunner().invoke(main, argv), future_output)
    assert not any((tmp_path / name).exists() for name in ("report", "upstream", "nemo.jsonl", "lhotse"))


def test_resume_refuses_a_future_output(future_output: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", tone(0.3, 16000), 16000)
    pq.write_table(pa.table({"id": ["a"], "audio": ["a.wav"]}), tmp_path / "m.parquet")
    def contents() -> dict[str, bytes]:  # the run's lock file aside, nothing is added, changed or removed
        files = (p for p in future_output.rglob("*") if p.is_file() and p.name != "lock")
        return {str(p.relative_to(future_output)): p.read_bytes() for p in files}

    before = contents()
    _refused(CliRunner().invoke(main, ["prepare", str(tmp_path / "m.parquet"), "-o", str(future_output), "--no-progress"]), future_output)
    assert contents() == before


def test_tar_input_refuses_a_future_output_and_a_future_sample(future_output: Path, tmp_path: Path) -> None:
    from pipeline.io.tar_source import build_tar_manifest

    with pytest.raises(OutputVersionError, match=f"schema version {FUTURE}"):
        build_tar_manifest(str(future_output / "shards"))
    shard = tmp_path / "loose" / "s-000000.tar"  # a shard copied out of its output: its sample json says 999
    shard.parent.mkdir()
    with tarfile.open(shard, "w") as tar:
        for name, data in (("k.flac", tone_flac(0.3, 16000, 220.0)), ("k.json", json.dumps({"job": "prepare", "schema_version": FUTURE, "id": "x"}).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(OutputVersionError, match=rf"sample 'k'.*schema version {FUTURE}"):
        build_tar_manifest(str(shard))
