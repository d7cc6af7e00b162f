"""Samples as lhotse's own objects: one `Recording`, one `SupervisionSegment`, one `MonoCut` each.

Shared by the Shar and the manifest exports, so both describe a sample the same way. Ids are the
sample keys (safe names: lhotse uses the cut id as a tar member name); the manifest id, the
index columns and the sample's json travel in the supervision's ``custom`` (cuts embed their
supervisions, so every lhotse reader sees them: ``cut.supervisions[0].custom["source_id"]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from lhotse.audio import AudioSource

from pipeline.export.samples import ExportSample

# columns lhotse already holds in its own fields
_IN_LHOTSE_FIELDS = ("id", "duration", "text", "speaker", "language")


def supervision_custom(sample: ExportSample) -> dict[str, Any]:
    """Provenance for lhotse: the manifest id, index columns not in lhotse's fields, the sample json."""
    fields = {k: v for k, v in sample.provenance().items() if k not in _IN_LHOTSE_FIELDS}
    return {"sample_id": sample.id, **fields, "sample_meta": sample.meta_json()}


def sample_recording(sample: ExportSample, source: AudioSource) -> Recording:
    return Recording(
        id=sample.key,
        sources=[source],
        sampling_rate=sample.sample_rate,
        num_samples=sample.num_samples,
        duration=sample.duration,
        channel_ids=list(range(sample.channels)),
    )


def sample_cut(sample: ExportSample, source: AudioSource) -> MonoCut:
    """The cut of a whole sample: recording from `source`, one supervision with the provenance."""
    recording = sample_recording(sample, source)
    supervision = SupervisionSegment(
        id=sample.key,
        recording_id=sample.key,
        start=0.0,
        duration=sample.duration,
        channel=0,
        text=sample.text,
        language=sample.language,
        speaker=sample.speaker,
        custom=supervision_custom(sample),
    )
    return MonoCut(id=sample.key, start=0.0, duration=sample.duration, channel=0, recording=recording, supervisions=[supervision])


def memory_source(sample: ExportSample) -> AudioSource:
    """The stored audio bytes themselves (lhotse decodes them when asked for samples)."""
    return AudioSource(type="memory", channels=list(range(sample.channels)), source=sample.audio)


class _LazyCuts:
    """Re-iterable, lazy: each pass streams the samples again and builds cuts one at a time."""

    def __init__(self, samples: Iterable[ExportSample], source: Callable[[ExportSample], AudioSource]):
        self.samples = samples
        self.source = source

    def __iter__(self) -> Iterator[MonoCut]:
        for sample in self.samples:
            yield sample_cut(sample, self.source(sample))


def lazy_cutset(samples: Iterable[ExportSample], source: Callable[[ExportSample], AudioSource] = memory_source) -> CutSet:
    """A lazy `CutSet` over `samples` (nothing is read until it is iterated)."""
    return CutSet(_LazyCuts(samples, source))
