"""Lhotse manifests written by lhotse's serializers, read back by lhotse: audio, durations, provenance."""

from __future__ import annotations

from lhotse import CutSet, RecordingSet, SupervisionSet

from pipeline.export.lhotse_manifest import export_lhotse_manifest
from tests.pipeline.export.conftest import assert_audio_equal, stored_samples


def test_manifests_load_in_lhotse_and_point_at_byte_copies_of_the_stored_audio(tmp_path, synth_out):
    reference = stored_samples(synth_out)
    to = tmp_path / "lhotse"
    result = export_lhotse_manifest(synth_out, to, progress=False)
    assert result.samples == 24

    recordings = RecordingSet.from_file(to / "recordings.jsonl.gz").to_eager()
    supervisions = SupervisionSet.from_file(to / "supervisions.jsonl.gz").to_eager()
    cuts = CutSet.from_file(to / "cuts.jsonl.gz").to_eager()
    assert len(recordings) == len(supervisions) == len(cuts) == 24
    by_id = {cut.supervisions[0].custom["sample_id"]: cut for cut in cuts}
    assert sorted(by_id) == sorted(reference)
    for sample_id, cut in by_id.items():
        ref = reference[sample_id]
        path = to / "audio" / f"{ref['row']['key']}.flac"
        assert cut.recording.sources[0].source == str(path) and path.read_bytes() == ref["flac"]
        assert_audio_equal(cut.load_audio(), ref["audio"])
        assert_audio_equal(recordings[cut.recording_id].load_audio(), ref["audio"])
        assert cut.duration == recordings[cut.recording_id].duration == ref["row"]["duration"]
        supervision = supervisions[cut.id]
        assert supervision.text == ref["row"]["text"] and supervision.speaker == ref["row"]["speaker"]
        assert supervision.custom["source_id"] == ref["row"]["source_id"] and supervision.custom["seed"] == ref["row"]["seed"]
        assert supervision.custom["dnsmos_ovrl"] == ref["row"]["dnsmos_ovrl"]


def test_manifests_of_a_real_prepare_output_and_of_48k_upsampled_audio(tmp_path, prepared_out, upsampled_out):
    for output, expected in ((prepared_out, 4), (upsampled_out, 7)):
        reference = stored_samples(output)
        to = tmp_path / output.parent.name
        export_lhotse_manifest(output, to, progress=False)
        cuts = CutSet.from_file(to / "cuts.jsonl.gz").to_eager()
        assert len(cuts) == expected == len(reference)
        for cut in cuts:
            ref = reference[cut.supervisions[0].custom["sample_id"]]
            assert cut.sampling_rate == ref["rate"] and cut.num_samples == ref["audio"].shape[0]
            assert_audio_equal(cut.load_audio(), ref["audio"])
