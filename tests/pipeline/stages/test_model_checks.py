"""Every checkpoint a job will load is checked once in the driver, before any work: one line, no output written.

Before, a wrong file stopped the job only when the first actor loaded it, 10-15 s in, after Ray started.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from pipeline.cli import main


class NotATensor:
    """Pickled into a checkpoint: `weights_only=True` refuses the file."""


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> dict:
    from hierspeech.testing.tiny_synthesis import write_tiny_checkpoints

    root = tmp_path_factory.mktemp("checks")
    good = write_tiny_checkpoints(root / "good", speechsr_rates=(24000,))
    bad = {}
    # another model's weights, with this model's config beside them
    (root / "wrong_synth").mkdir()
    shutil.copy(good["ttv"], root / "wrong_synth" / "ckpt.pth")
    shutil.copy(Path(good["synthesizer"]).with_name("config.json"), root / "wrong_synth" / "config.json")
    bad["synthesizer"] = str(root / "wrong_synth" / "ckpt.pth")
    # a pickle weights_only refuses
    (root / "pickled_ttv").mkdir()
    torch.save({"weights": torch.load(good["ttv"], weights_only=True), "extra": NotATensor()}, root / "pickled_ttv" / "ckpt.pth")
    shutil.copy(Path(good["ttv"]).with_name("config.json"), root / "pickled_ttv" / "config.json")
    bad["ttv"] = str(root / "pickled_ttv" / "ckpt.pth")
    # a truncated download
    (root / "cut_denoiser").mkdir()
    data = Path(good["denoiser"]).read_bytes()
    (root / "cut_denoiser" / "g_best").write_bytes(data[: len(data) // 2])
    shutil.copy(Path(good["denoiser"]).with_name("config.json"), root / "cut_denoiser" / "config.json")
    bad["denoiser"] = str(root / "cut_denoiser" / "g_best")
    # the synthesizer's raw state dict where SpeechSR's {"model": ...} file is expected
    (root / "wrong_sr").mkdir()
    shutil.copy(good["synthesizer"], root / "wrong_sr" / "G.pth")
    shutil.copy(Path(good["speechsr24000"]).with_name("config.json"), root / "wrong_sr" / "config.json")
    bad["speechsr"] = str(root / "wrong_sr" / "G.pth")
    manifest = root / "tts.parquet"
    pq.write_table(pa.table({"id": ["a"], "text": ["hello"], "prompt_audio": ["p.wav"]}), manifest)
    return {"root": root, "good": good, "bad": bad, "manifest": manifest}


def _assert_refused_before_work(result, out: Path, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not out.exists(), "the job started before the checkpoint was checked"


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        ("synthesizer", "does not match Synthesizer"),
        ("ttv", "refused by weights_only: Unsupported global"),
        ("denoiser", "could not read checkpoint"),
        ("speechsr", "has no 'model' entry"),
    ],
)
def test_synthesize_checks_every_checkpoint_first(kit, tmp_path: Path, option: str, fragment: str) -> None:
    models = {"synthesizer": kit["good"]["synthesizer"], "ttv": kit["good"]["ttv"], "denoiser": kit["good"]["denoiser"], "speechsr": kit["good"]["speechsr24000"]}
    models[option] = kit["bad"][option]
    out = tmp_path / "out"
    args = ["synthesize", "tts", str(kit["manifest"]), "-o", str(out), "--no-progress"]
    for name, path in models.items():
        args += [f"--{name}", path]
    result = CliRunner().invoke(main, args)
    _assert_refused_before_work(result, out, f"[synthesize] --{option} {models[option]} cannot be loaded", fragment)


def test_extract_checks_the_denoiser_first(kit, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["extract", str(kit["manifest"]), "-o", str(out), "--features", "denoise", "--denoiser-ckpt", kit["bad"]["denoiser"], "--no-progress"]
    _assert_refused_before_work(CliRunner().invoke(main, args), out, "[extract] --denoiser-ckpt", "Denoiser checkpoint", "could not read checkpoint")


def test_upsample_checks_speechsr_first(kit, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["upsample", str(kit["manifest"]), "-o", str(out), "--sr", "24000", "--checkpoint", kit["bad"]["speechsr"], "--no-progress"]
    _assert_refused_before_work(CliRunner().invoke(main, args), out, "[upsample] --checkpoint", "has no 'model' entry")
