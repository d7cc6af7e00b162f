"""The `hsp` CLI through click's CliRunner, and one real subprocess run of the console script."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from pipeline.cli import EXAMPLES_DIR, main
from tests.conftest import REPO_ROOT
from tests.pipeline.conftest import tone


def test_manifest_build_and_validate(tmp_path):
    import soundfile as sf

    corpus = tmp_path / "c" / "p225"
    corpus.mkdir(parents=True)
    sf.write(corpus / "p225_001.wav", tone(0.5, 16000), 16000)
    (corpus / "p225_001.txt").write_text("hello")
    runner = CliRunner()
    result = runner.invoke(main, ["manifest", "build", str(tmp_path / "c"), "-o", str(tmp_path / "m.parquet")])
    assert result.exit_code == 0, result.output
    assert "1 files" in result.output and "1 with transcripts" in result.output
    result = runner.invoke(main, ["manifest", "validate", str(tmp_path / "m.parquet"), "--job", "prepare"])
    assert result.exit_code == 0 and "manifest is valid" in result.output
    (corpus / "p225_001.wav").unlink()
    result = runner.invoke(main, ["manifest", "validate", str(tmp_path / "m.parquet")])
    assert result.exit_code == 1
    assert "row 0 (id 'p225/p225_001'), column 'audio': file not found" in result.output


def test_validate_rejects_duplicates_with_row_and_column(tmp_path):
    import pyarrow as pa

    pq.write_table(pa.table({"id": ["x", "x"], "audio": ["a.wav", "b.wav"]}), tmp_path / "d.parquet")
    result = CliRunner().invoke(main, ["manifest", "validate", str(tmp_path / "d.parquet"), "--no-check-files"])
    assert result.exit_code == 1
    assert "row 1 (id 'x'), column 'id': duplicate id 'x' in rows [0, 1]" in result.output


def test_prepare_and_inspect_via_cli_runner(tmp_path, ray_local):
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(main, ["prepare", str(EXAMPLES_DIR / "examples.parquet"), "-o", str(out), "--rows-per-shard", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["samples_out"] == 7 and summary["errors"] == 0
    assert summary["audio_hours_out"] > 0 and summary["versions"]["schema"] == "1"
    result = runner.invoke(main, ["inspect", str(out)])
    assert result.exit_code == 0, result.output
    assert "(complete)" in result.output and "samples       7" in result.output
    # a partial output (one committed part removed) is reported as such, with a non-zero exit
    part = sorted((out / "index.parquet").glob("part-*"))[0]
    part.unlink()
    result = runner.invoke(main, ["inspect", str(out)])
    assert result.exit_code == 3 and "partial" in result.output


def test_hsp_console_script_subprocess(tmp_path, reference_dir):
    exe = Path(sys.executable).parent / "hsp"  # the console script installed beside this Python
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "pipeline.cli"]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               HSP_WEIGHTS_DIR=str(reference_dir / "weights"))
    done = subprocess.run([*command, "demo", "-o", str(tmp_path / "demo")], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "COMPLETE" in done.stderr
    # a first run shows no error lines: neither Ray's C++ "E" lines (they may follow a progress bar's \r)
    # nor Python ERROR logs
    errors = re.findall(r"\[\d{4}-\d\d-\d\d [\d:,.]+ E \d+ \d+\][^\n]*|\bERROR\b[^\n]*|Traceback", done.stderr)
    assert not errors, errors
    index = pq.read_table(tmp_path / "demo" / "prepared" / "index.parquet")
    assert index.num_rows == 7 and set(index.column("sample_rate").to_pylist()) == {16000}
    assert sorted(set(index.column("source_sample_rate").to_pylist())) == [8000, 22050, 44100]
    upsampled = pq.read_table(tmp_path / "demo" / "upsampled48k" / "index.parquet")  # prepare's shards, SpeechSR 48k
    assert sorted(upsampled.column("id").to_pylist()) == sorted(index.column("id").to_pylist())
    assert set(upsampled.column("sample_rate").to_pylist()) == {48000}


def test_every_command_defaults_to_one_f0_backend_and_says_why():
    from hierspeech.f0 import DEFAULT_BACKEND
    from pipeline.extract import ExtractConfig
    from pipeline.stages.vc_f0 import VcF0Stage
    from pipeline.synthesize import SynthesizeConfig

    synthesize = main.commands["synthesize"]
    commands = {"extract": main.commands["extract"], "synthesize vc": synthesize.commands["vc"], "synthesize tts": synthesize.commands["tts"], "augment": main.commands["augment"]}
    for name, command in commands.items():
        option = next(p for p in command.params if p.name == "f0_backend")
        assert option.default == DEFAULT_BACKEND, name
        assert "training features and synthesis inputs get the same F0" in option.help, name
    assert ExtractConfig().f0_backend == SynthesizeConfig(synthesizer="s.pth").f0_backend == VcF0Stage().backend == DEFAULT_BACKEND
