"""A user's mistake ends every command in one `Error: ...` line with its class's exit code, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "not_an_output").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.parquet").write_text("id,audio\n")
    (tmp_path / "models.yaml").write_text("synthesiser: g.pth\n")  # misspelt key
    (tmp_path / "list.yaml").write_text("- g.pth\n")
    (tmp_path / "g.pth").write_bytes(b"")
    return {"tmp": tmp_path}


CASES = {
    "inspect-not-an-output": (["inspect", "{tmp}/not_an_output"], 1, "is not a job output (no job.json)"),
    "report-not-an-output": (["report", "{tmp}/not_an_output", "-o", "{tmp}/r"], 1, "is not a job output"),
    "export-upstream-not-an-output": (["export", "upstream", "{tmp}/not_an_output", "--to", "{tmp}/u"], 1, "is not a job output"),
    "export-nemo-not-an-output": (["export", "nemo", "{tmp}/not_an_output", "--to", "{tmp}/n.jsonl"], 1, "is not a job output"),
    "export-lhotse-not-an-output": (["export", "lhotse", "{tmp}/not_an_output", "--to", "{tmp}/l"], 1, "is not a job output"),
    "models-unknown-key": (["synthesize", "vc", "{tmp}/bad.parquet", "-o", "{tmp}/o", "--models", "{tmp}/models.yaml"], 2, "unknown key(s) ['synthesiser']"),
    "models-not-a-mapping": (["synthesize", "tts", "{tmp}/bad.parquet", "-o", "{tmp}/o", "--models", "{tmp}/list.yaml"], 2, "not list"),
    "synthesize-no-synthesizer": (["synthesize", "tts", "{tmp}/bad.parquet", "-o", "{tmp}/o"], 2, "pass --synthesizer PATH"),
    "prepare-not-parquet": (["prepare", "{tmp}/bad.parquet", "-o", "{tmp}/o"], 1, "not Parquet"),
    "manifest-validate-not-parquet": (["manifest", "validate", "{tmp}/bad.parquet"], 1, "not Parquet"),
    "manifest-build-no-audio": (["manifest", "build", "{tmp}/empty", "-o", "{tmp}/m.parquet"], 1, "no audio files"),
    "upsample-no-config-beside": (["upsample", "{tmp}/bad.parquet", "-o", "{tmp}/o", "--checkpoint", "{tmp}/g.pth"], 1, "no config.json beside"),
    "validate-unknown-job": (["manifest", "validate", "{tmp}/bad.parquet", "--job", "nope"], 2, "'nope' is not one of"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_users_mistake_is_one_line(paths, name: str) -> None:
    argv, exit_code, message = CASES[name]
    result = CliRunner().invoke(main, [a.format(tmp=paths["tmp"]) for a in argv])
    assert result.exit_code == exit_code, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: ") and message in lines[-1], result.output
    assert "Traceback" not in result.output
