"""NeMo manifests: the tarred layout NeMo's loader matches (read back with webdataset) and the plain one."""

from __future__ import annotations

import json
import re

import braceexpand
import pytest
import soundfile as sf
import webdataset as wds

from pipeline.export.errors import ExportError
from pipeline.export.nemo import export_nemo
from pipeline.export.options import NemoOptions
from tests.pipeline.export.conftest import stored_samples

NEMO_SHARD = re.compile(r"audio[^/]*_(\d+)[^/]*\.tar")  # how NeMo's tarred loader finds a tar's shard id


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_tarred_layout_matches_what_nemo_reads_and_copies_audio_member_to_member(tmp_path, synth_out):
    reference = stored_samples(synth_out)
    to = tmp_path / "nemo"
    result = export_nemo(synth_out, to, NemoOptions(tarred=True, num_shards=5), progress=False)

    pattern = result.details["tarred_audio_filepaths"]
    assert pattern == f"{to}/audio__OP_0..4_CL_.tar"
    tars = list(braceexpand.braceexpand(pattern.replace("_OP_", "{").replace("_CL_", "}")))
    assert sorted(tars) == sorted(str(p) for p in to.glob("*.tar"))
    lines = _lines(to / "tarred_audio_manifest.json")
    assert sorted(line["id"] for line in lines) == sorted(reference)
    assert sorted(result.details["samples_per_shard"]) == [4, 5, 5, 5, 5]

    members: dict[str, tuple[int, bytes]] = {}
    for sample in wds.WebDataset(tars, shardshuffle=False, empty_check=False):
        shard_id = int(NEMO_SHARD.search(sample["__url__"]).group(1))
        members[f"{sample['__key__']}.flac"] = (shard_id, sample["flac"])
        assert [name for name in sample if not name.startswith("__")] == ["flac"]  # audio only, one member per sample
    assert len(members) == len(lines)
    for line in lines:
        ref = reference[line["id"]]
        shard_id, data = members[line["audio_filepath"]]  # NeMo pairs line and member by this name
        assert line["shard_id"] == shard_id and data == ref["flac"]
        assert line["duration"] == ref["audio"].shape[0] / ref["rate"] and line["text"] == ref["row"]["text"]
        for column in ("source_id", "prompt_id", "mode", "seed", "gates_passed", "dnsmos_ovrl"):
            assert line[column] == ref["row"][column]
        assert line["meta"]["params"]["noise_scale"] == 0.333 and line["speaker"] == ref["row"]["speaker"]


def test_tarred_export_refuses_more_shards_than_samples(tmp_path, upsampled_out):
    with pytest.raises(ExportError, match=r"7 samples.*fewer than 8 shards.*--num-shards"):
        export_nemo(upsampled_out, tmp_path / "nemo", NemoOptions(tarred=True, num_shards=8), progress=False)


def test_plain_manifest_points_at_audio_files_that_decode_to_the_stored_samples(tmp_path, prepared_out):
    reference = stored_samples(prepared_out)
    to = tmp_path / "plain"
    result = export_nemo(prepared_out, to, progress=False)
    lines = _lines(to / "manifest.json")
    assert result.details["manifest_filepath"] == str(to / "manifest.json")
    assert sorted(line["id"] for line in lines) == sorted(reference)
    for line in lines:
        ref = reference[line["id"]]
        audio, rate = sf.read(line["audio_filepath"], dtype="float32", always_2d=True)
        assert rate == ref["rate"] and (audio == ref["audio"]).all()
        assert line["audio_filepath"].startswith(str(to / "audio")) and line["lang"] == "en-us"
        assert line["duration"] == ref["row"]["duration"] and line["text"] == ref["row"]["text"]
