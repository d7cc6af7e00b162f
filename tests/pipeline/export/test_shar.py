"""Lhotse Shar export, read back with lhotse itself: `CutSet.from_shar`, audio, durations, provenance."""

from __future__ import annotations

import numpy as np
from lhotse import CutSet

from pipeline.export.options import SharOptions
from pipeline.export.shar import export_shar
from pipeline.export.testing import synthetic_output
from tests.pipeline.export.conftest import assert_audio_equal, stored_samples


def _read_back(to) -> dict:
    return {cut.supervisions[0].custom["sample_id"]: (cut, cut.load_audio()) for cut in CutSet.from_shar(in_dir=to)}


def test_shar_of_a_synthesis_output_loads_in_lhotse_with_equal_audio_durations_and_provenance(tmp_path, synth_out):
    reference = stored_samples(synth_out)
    result = export_shar(synth_out, tmp_path / "shar", SharOptions(shard_size=10), progress=False)

    assert result.samples == 24 and result.skipped_failed_gates == 6
    assert sorted(p.name for p in (tmp_path / "shar").iterdir()) == [
        f"{kind}.{n:06d}.{ext}" for kind, ext in (("cuts", "jsonl.gz"), ("recording", "tar")) for n in range(3)
    ]  # nothing else in DIR: from_shar(in_dir) takes every file as a field
    cuts = _read_back(tmp_path / "shar")
    assert sorted(cuts) == sorted(reference)
    for sample_id, (cut, audio) in cuts.items():
        ref = reference[sample_id]
        assert_audio_equal(audio, ref["audio"])  # 16-bit FLAC re-encoded by lhotse: lossless
        assert cut.duration == ref["audio"].shape[0] / ref["rate"] == ref["row"]["duration"]
        assert cut.id == ref["row"]["key"] and cut.sampling_rate == ref["rate"]
        supervision = cut.supervisions[0]
        assert supervision.text == ref["row"]["text"] and supervision.speaker == ref["row"]["speaker"]
        for column in ("source_id", "prompt_id", "mode", "seed", "gates_passed", "dnsmos_ovrl"):
            assert supervision.custom[column] == ref["row"][column], column
        assert '"noise_scale": 0.333' in supervision.custom["sample_meta"]


def test_shar_of_a_real_prepare_output_and_of_failed_samples_on_request(tmp_path, prepared_out, synth_out):
    reference = stored_samples(prepared_out)
    export_shar(prepared_out, tmp_path / "prep", progress=False)
    cuts = _read_back(tmp_path / "prep")
    assert sorted(cuts) == sorted(reference) == sorted(["plain_id", "spk/../../etc/passwd", "ünïcødé 名前", "a.b.c/d"])
    for sample_id, (cut, audio) in cuts.items():
        assert_audio_equal(audio, reference[sample_id]["audio"])
        assert cut.supervisions[0].language == "en-us" and cut.supervisions[0].text == reference[sample_id]["row"]["text"]

    result = export_shar(synth_out, tmp_path / "all", SharOptions(include_failed=True), progress=False)
    assert result.samples == 30 and len(_read_back(tmp_path / "all")) == 30


def test_shar_of_24_bit_audio_is_rounded_to_16_bits_and_counted(tmp_path):
    out = synthetic_output(tmp_path / "out24", 3, bits=24, fail_gate_every=0, errors=0)
    reference = stored_samples(out)
    result = export_shar(out, tmp_path / "shar", progress=False)
    assert result.details["requantized_to_16_bit"] == 3
    for sample_id, (_cut, audio) in _read_back(tmp_path / "shar").items():
        np.testing.assert_allclose(audio.T, reference[sample_id]["audio"], atol=1 / 32768)
