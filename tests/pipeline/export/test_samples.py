"""The shared sample stream: which samples, in which order, with what provenance, and what it refuses."""

from __future__ import annotations

import io
import json
import shutil
import tarfile

import pytest

from pipeline.export.errors import ExportError
from pipeline.export.samples import SampleSource
from pipeline.export.testing import synthetic_output, tone_flac
from pipeline.io.output import INDEX, OutputDir
from tests.pipeline.export.conftest import stored_samples


def test_stream_keeps_gate_passing_samples_with_every_index_column_in_a_fixed_order(synth_out):
    reference = stored_samples(synth_out)
    source = SampleSource(synth_out)
    first = list(source)
    assert [s.id for s in first] == [s.id for s in source]  # re-iterable, same order
    assert sorted(s.id for s in first) == sorted(reference) and len(reference) == 24
    assert source.count() == (24, 6)
    for sample in first:
        ref = reference[sample.id]
        assert sample.audio == ref["flac"] and sample.key == ref["row"]["key"]
        assert sample.num_samples == ref["audio"].shape[0] and sample.sample_rate == ref["rate"]
        provenance = sample.provenance()
        for column in ("source_id", "prompt_id", "mode", "seed", "gates_passed", "dnsmos_ovrl"):
            assert provenance[column] == ref["row"][column]
        assert "shard" not in provenance and provenance["job"] == "synthesize"
        json.loads(sample.meta_json())  # strict JSON, although failed gates hold -inf
    everything = SampleSource(synth_out, include_failed=True)
    assert len(list(everything)) == 30 and everything.count() == (30, 0)
    failed = [s for s in everything if s.index["gates_passed"] is False]
    assert len(failed) == 6 and all(json.loads(s.meta_json())["gates"]["rms_dbfs"] is None for s in failed)


def test_refuses_a_folder_that_is_no_output_and_an_output_of_a_newer_schema(tmp_path, synth_out):
    with pytest.raises(ExportError, match="not a job output"):
        SampleSource(tmp_path)
    newer = tmp_path / "newer"
    shutil.copytree(synth_out, newer)
    job = json.loads((newer / "job.json").read_text())
    (newer / "job.json").write_text(json.dumps({**job, "schema_version": 99}))
    with pytest.raises(ExportError, match=r"schema version 99.*upgrade"):
        SampleSource(newer)


def test_a_shard_missing_a_sample_its_index_lists_is_an_error_naming_it(tmp_path, synth_out):
    damaged = tmp_path / "damaged"
    shutil.copytree(synth_out, damaged)
    row = OutputDir(str(damaged)).read_parts(INDEX).to_pylist()[0]
    shard = damaged / row["shard"]
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers() if not m.name.startswith(row["key"] + ".")]
    with tarfile.open(shard, "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ExportError, match=f"lacks 1 sample.*{row['key']}"):
        list(SampleSource(damaged, include_failed=True))


def test_another_audio_member_is_exported_and_other_members_are_skipped(tmp_path):
    denoised = tone_flac(0.25, 16000, 440.0)
    out = synthetic_output(tmp_path / "out", 4, fail_gate_every=0, errors=0, extra_members={"denoised.flac": denoised, "w2v.npy": b"\0" * 100_000})
    samples = list(SampleSource(out, audio_member="denoised.flac"))
    assert len(samples) == 4 and all(s.audio == denoised and s.member_name == f"{s.key}.flac" for s in samples)
    assert all(s.num_samples == 4000 and s.bits == 16 for s in samples)
    with pytest.raises(ExportError, match=r"no 'mel\.npy' member"):
        list(SampleSource(out, audio_member="mel.npy"))
