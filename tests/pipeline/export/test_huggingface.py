"""Hugging Face Parquet, read back with `datasets.load_dataset("parquet")`: Audio feature, samples, provenance."""

from __future__ import annotations

import io

import datasets
import numpy as np
import pyarrow.parquet as pq
import soundfile as sf

from pipeline.export.huggingface import export_huggingface
from pipeline.export.options import HuggingFaceOptions
from tests.pipeline.export.conftest import stored_samples


def _load(to, cache, **kwargs):
    return datasets.load_dataset("parquet", data_dir=str(to), cache_dir=str(cache), **kwargs)


def test_parquet_loads_with_datasets_as_an_audio_dataset_with_equal_samples_and_typed_provenance(tmp_path, synth_out):
    reference = stored_samples(synth_out)
    to = tmp_path / "hf"
    result = export_huggingface(synth_out, to, HuggingFaceOptions(max_shard_bytes=40_000, rows_per_group=4), progress=False)
    files = sorted(p.name for p in to.glob("*.parquet"))
    assert len(files) == result.details["shards"] > 1 and files[0] == "train-00000.parquet"
    assert all(pq.ParquetFile(to / f).metadata.num_row_groups >= 1 for f in files)

    train = _load(to, tmp_path / "cache")["train"]
    assert isinstance(train.features["audio"], datasets.Audio)
    assert train.features["seed"] == datasets.Value("int64") and train.features["dnsmos_ovrl"] == datasets.Value("float64")
    assert train.features["gates_passed"] == datasets.Value("bool")
    assert train.num_rows == 24 and sorted(train["id"]) == sorted(reference)
    # decoding needs torchcodec, whose wheels need CUDA torch: read the stored bytes and decode them here
    raw = train.cast_column("audio", datasets.Audio(decode=False))
    for row in raw:
        ref = reference[row["id"]]
        assert row["audio"]["bytes"] == ref["flac"] and row["audio"]["path"] == f"{ref['row']['key']}.flac"
        audio, rate = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32", always_2d=True)
        np.testing.assert_array_equal(audio, ref["audio"])
        assert rate == row["sample_rate"] == ref["rate"] and row["duration"] == ref["row"]["duration"]
        for column in ("text", "speaker", "source_id", "prompt_id", "mode", "seed", "gates_passed", "dnsmos_ovrl"):
            assert row[column] == ref["row"][column], column
        assert row["job"] == "synthesize" and '"noise_scale": 0.333' in row["meta"]

    streamed = _load(to, tmp_path / "cache2", split="train", streaming=True).cast_column("audio", datasets.Audio(decode=False))
    assert [r["id"] for r in streamed] == raw["id"]  # file order is the export's order


def test_parquet_of_a_real_prepare_output_keeps_its_own_columns(tmp_path, prepared_out):
    reference = stored_samples(prepared_out)
    to = tmp_path / "hf"
    export_huggingface(prepared_out, to, progress=False)
    train = _load(to, tmp_path / "cache")["train"].cast_column("audio", datasets.Audio(decode=False))
    assert sorted(train["id"]) == sorted(reference)
    assert {"source_sample_rate", "source_channels", "language"} <= set(train.column_names)
    for row in train:
        ref = reference[row["id"]]
        assert row["audio"]["bytes"] == ref["flac"] and row["source_sample_rate"] == ref["row"]["source_sample_rate"]
        assert row["language"] == "en-us" and row["text"] == ref["row"]["text"]
