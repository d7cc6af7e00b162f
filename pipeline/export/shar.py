"""`hsp export shar`: Lhotse Shar, written by lhotse's own `SharWriter`.

Layout under DIR: ``cuts.NNNNNN.jsonl.gz`` + ``recording.NNNNNN.tar`` per `shard_size` cuts,
read back with ``CutSet.from_shar(in_dir=DIR)``. The cuts come from a lazy `CutSet` over the
output's samples (`lhotse_cuts`): one sample in memory at a time. Each shard is written by a
fresh `SharWriter` into the staging folder and its two files are committed by rename, the
recording tar first, so a shard's manifest never points at audio that is not there.

lhotse's writer decodes each recording and encodes it again as 16-bit FLAC (or WAV): lossless for
16-bit audio (every job's default), rounded to 16 bits for a ``--bits 24`` prepare output
(counted in the result as ``requantized_to_16_bit``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lhotse
from lhotse.shar import SharWriter

from pipeline.export.lhotse_cuts import lazy_cutset
from pipeline.export.options import SharOptions
from pipeline.export.run import ExportResult, ExportRun
from pipeline.export.samples import ExportSample

PATTERNS = ("cuts.*.jsonl.gz", "recording.*.tar")


def shar_names(shard: int, audio_field: str = "recording") -> tuple[str, str]:
    """(audio tar, cuts manifest) file names of shard number `shard`, as lhotse names them."""
    return f"{audio_field}.{shard:06d}.tar", f"cuts.{shard:06d}.jsonl.gz"


def export_shar(output: str | Path, to: str | Path, options: SharOptions | None = None, *, progress: bool = True) -> ExportResult:
    """Write the output's (gate-passing) samples as Lhotse Shar in `to`; returns what was written."""
    options = options or SharOptions()
    with ExportRun("shar", output, to, options, progress=progress, sidecar=True) as run:
        staging = str(run.target.staging)
        writer: SharWriter | None = None
        shard = in_shard = requantized = 0
        sizes: list[int] = []

        def commit_shard() -> None:
            assert writer is not None
            writer.close()
            for name in shar_names(shard):
                run.target.commit(name)
            sizes.append(in_shard)

        def samples() -> Iterator[ExportSample]:
            nonlocal requantized
            for sample in run.samples():
                requantized += int((sample.bits or 16) > 16)
                yield sample

        for cut in lazy_cutset(samples()):
            if writer is None:
                writer = SharWriter(staging, fields={"recording": options.audio_format}, shard_size=options.shard_size, shard_offset=shard, warn_unused_fields=False)
            writer.write(cut)
            in_shard += 1
            if in_shard == options.shard_size:
                commit_shard()
                writer, shard, in_shard = None, shard + 1, 0
        if writer is not None:
            commit_shard()
        details = {
            "shards": len(sizes),
            "cuts_per_shard": sizes,
            "fields": {"recording": options.audio_format},
            "requantized_to_16_bit": requantized,
            "lhotse": lhotse.__version__,
            "read_with": f"lhotse.CutSet.from_shar(in_dir={str(run.to)!r})",
        }
        return run.finish(details, PATTERNS)
