"""`hsp export lhotse`: Lhotse manifests over audio files, written by lhotse's own serializers.

Layout under DIR::

    audio/<key>.flac              the stored audio, copied byte for byte (no decode)
    recordings.jsonl.gz           RecordingSet (absolute paths to audio/)
    supervisions.jsonl.gz         SupervisionSet (text, speaker, language, provenance in custom)
    cuts.jsonl.gz                 CutSet of the two (``CutSet.from_file``)

The same `Recording`/`SupervisionSegment`/`MonoCut` objects as the Shar export (`lhotse_cuts`),
streamed with lhotse's sequential writers (what ``to_file`` of a lazy manifest uses), in one pass
over the shards; each audio file and each manifest is committed by rename.
"""

from __future__ import annotations

from pathlib import Path

import lhotse
from lhotse import CutSet, RecordingSet, SupervisionSet
from lhotse.audio import AudioSource

from pipeline.export.lhotse_cuts import sample_cut
from pipeline.export.options import LhotseManifestOptions
from pipeline.export.run import ExportResult, ExportRun

AUDIO_DIR = "audio"
MANIFESTS = {"recordings": "recordings.jsonl.gz", "supervisions": "supervisions.jsonl.gz", "cuts": "cuts.jsonl.gz"}
PATTERNS = tuple(MANIFESTS.values())


def export_lhotse_manifest(
    output: str | Path, to: str | Path, options: LhotseManifestOptions | None = None, *, progress: bool = True
) -> ExportResult:
    """Write audio files and Lhotse recordings/supervisions/cuts manifests of the output in `to`."""
    options = options or LhotseManifestOptions()
    with ExportRun("lhotse", output, to, options, progress=progress) as run:
        target = run.target
        with (
            RecordingSet.open_writer(target.staged(MANIFESTS["recordings"])) as recordings,
            SupervisionSet.open_writer(target.staged(MANIFESTS["supervisions"])) as supervisions,
            CutSet.open_writer(target.staged(MANIFESTS["cuts"])) as cuts,
        ):
            for sample in run.samples():
                name = f"{AUDIO_DIR}/{sample.member_name}"
                target.staged(name).write_bytes(sample.audio)
                path = target.commit(name, listed=False)
                cut = sample_cut(sample, AudioSource(type="file", channels=list(range(sample.channels)), source=str(path)))
                recordings.write(cut.recording)
                supervisions.write(cut.supervisions[0])
                cuts.write(cut)
        for name in MANIFESTS.values():
            target.commit(name)
        details = {
            "manifests": dict(MANIFESTS),
            "audio_dir": AUDIO_DIR,
            "audio_files": target.bulk_files,
            "lhotse": lhotse.__version__,
            "read_with": f"lhotse.CutSet.from_file({str(run.to / MANIFESTS['cuts'])!r})",
        }
        return run.finish(details, PATTERNS, bulk_dirs=(AUDIO_DIR,))
