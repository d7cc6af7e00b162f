"""`hsp export shar|nemo|hf|lhotse` through click's CliRunner, each read back with its consumer's library.

The source is a score-job output written through the real sink (no Ray): every 5th sample
failed a gate, so the default export keeps 16 of 20 and `--include-failed` all 20.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import glob
import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pytest
import soundfile as sf
import webdataset as wds
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.export.samples import passes_gates
from pipeline.export.testing import synthetic_output
from pipeline.io.output import INDEX, OutputDir


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    root = synthetic_output(tmp_path_factory.mktemp("scored") / "out", 20, job="score", rows_per_part=7,
                            extra_fields=[(pa.field("dnsmos_ovrl", pa.float64()), lambda n: 2.0 + n / 10)])
    rows = {r["id"]: r for r in OutputDir(str(root)).read_parts(INDEX).to_pylist()}
    return root, rows


def _export(*args: str) -> dict:
    result = CliRunner().invoke(main, ["export", *args, "--no-progress"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(result.output)


def _passing(rows: dict[str, dict]) -> set[str]:
    return {i for i, r in rows.items() if passes_gates(r)}


def test_shar_and_lhotse(scored, tmp_path):
    from lhotse import CutSet

    root, rows = scored
    result = _export("shar", str(root), "--to", str(tmp_path / "shar"), "--shard-size", "6")
    cuts = list(CutSet.from_shar(in_dir=tmp_path / "shar"))
    assert result["samples"] == len(cuts) == 16 and len(glob.glob(str(tmp_path / "shar" / "recording.*.tar"))) == 3
    assert {c.supervisions[0].custom["sample_id"] for c in cuts} == _passing(rows)
    for cut in cuts[:3]:
        audio = cut.load_audio()
        assert audio.shape[-1] == cut.num_samples and cut.duration == pytest.approx(rows[cut.supervisions[0].custom["sample_id"]]["duration"], abs=1e-3)

    result = _export("lhotse", str(root), "--to", str(tmp_path / "lhotse"), "--include-failed")
    manifest = CutSet.from_file(tmp_path / "lhotse" / "cuts.jsonl.gz")
    assert result["samples"] == len(manifest) == 20
    first = next(iter(manifest))
    assert first.load_audio().shape[-1] == first.num_samples


def test_nemo_plain_and_tarred(scored, tmp_path):
    root, rows = scored
    _export("nemo", str(root), "--to", str(tmp_path / "plain"))
    lines = [json.loads(line) for line in (tmp_path / "plain" / "manifest.json").read_text().splitlines()]
    assert {line["id"] for line in lines} == _passing(rows)
    assert all(sf.info(line["audio_filepath"]).duration == pytest.approx(line["duration"], abs=1e-3) for line in lines)

    result = _export("nemo", str(root), "--to", str(tmp_path / "tarred"), "--tarred", "--num-shards", "4")
    tars = sorted(glob.glob(str(tmp_path / "tarred" / "audio_*.tar")))
    assert len(tars) == 4 and all(re.search(r"audio[^/]*_(\d+)[^/]*\.tar", t) for t in tars)
    lines = [json.loads(line) for line in (tmp_path / "tarred" / "tarred_audio_manifest.json").read_text().splitlines()]
    members = {}
    for sample in wds.WebDataset(tars, shardshuffle=False, empty_check=False):
        shard = int(re.search(r"audio_(\d+)\.tar", sample["__url__"]).group(1))
        members[f"{sample['__key__']}.flac"] = (shard, sample["flac"])
    assert len(lines) == len(members) == result["samples"] == 16
    for line in lines:
        shard, data = members[line["audio_filepath"]]
        assert line["shard_id"] == shard and sf.info(io.BytesIO(data)).duration == pytest.approx(line["duration"], abs=1e-3)
    assert "_OP_0..3_CL_" in json.dumps(result["details"])

    refused = CliRunner().invoke(main, ["export", "nemo", str(root), "--to", str(tmp_path / "x"), "--num-shards", "3"])
    assert refused.exit_code == 2 and "--tarred only" in refused.output


def test_huggingface(scored, tmp_path):
    import datasets

    root, rows = scored
    _export("hf", str(root), "--to", str(tmp_path / "hf"), "--max-shard-bytes", "20000", "--include-failed")
    assert len(glob.glob(str(tmp_path / "hf" / "train-*.parquet"))) > 1
    loaded = datasets.load_dataset("parquet", data_dir=str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache"), split="train")
    assert len(loaded) == 20 and "dnsmos_ovrl" in loaded.column_names and isinstance(loaded.features["audio"], datasets.Audio)
    # decoding in datasets needs torchcodec (CUDA torch wheels): decode the stored bytes with soundfile
    row = loaded.cast_column("audio", datasets.Audio(decode=False))[0]
    audio, rate = sf.read(io.BytesIO(row["audio"]["bytes"]))
    assert rate == 16000 and audio.shape[0] / rate == pytest.approx(rows[row["id"]]["duration"], abs=1e-3)
    assert row["dnsmos_ovrl"] == rows[row["id"]]["dnsmos_ovrl"]
