"""`hsp export nemo`: NeMo ASR manifests, over audio files (default) or NeMo's tarred audio layout.

Plain (default), under DIR::

    audio/<key>.flac        the stored audio, copied byte for byte
    manifest.json           JSON lines: audio_filepath (absolute), duration, text, + provenance

Tarred (``tarred=True``), the layout NeMo's ``TarredAudioToTextDataset`` streams::

    audio_0.tar ... audio_<N-1>.tar      members ``<key>.flac``, copied member to member, no decode
    tarred_audio_manifest.json           audio_filepath = the member name, duration, text, shard_id

NeMo pairs a manifest line with the tar member whose name is its ``audio_filepath`` and takes the
shard number from ``audio[^/]*_(\\d+)[^/]*\\.tar``; pass it the tars as
``tarred_audio_filepaths=DIR/audio__OP_0..N-1_CL_.tar`` (in the result's details). Samples go to
shards in contiguous runs of equal size (+-1), in the output's order; NeMo shuffles at training
time. Extra keys of a line (id, speaker, lang, index columns, the sample json as ``meta``) are
kept by NeMo's manifest reader as provenance and ignored for training.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import IO, Any

from pipeline.engine.sink import FIXED_MTIME
from pipeline.export.commit import ExportDir
from pipeline.export.errors import ExportError
from pipeline.export.options import NemoOptions
from pipeline.export.run import ExportResult, ExportRun
from pipeline.export.samples import ExportSample, json_safe

AUDIO_DIR = "audio"
PLAIN_MANIFEST = "manifest.json"
TARRED_MANIFEST = "tarred_audio_manifest.json"
# keys NeMo reads from a manifest line: index columns of the same name must not overwrite them
_NEMO_KEYS = ("audio_filepath", "duration", "text", "offset", "shard_id", "speaker", "lang", "orig_sr", "id", "meta")


def tar_name(shard: int) -> str:
    return f"audio_{shard}.tar"


def tarred_pattern(to: Path, num_shards: int) -> str:
    """The brace pattern NeMo expands (``_OP_``/``_CL_`` stand for braces in its configs)."""
    return str(to / f"audio__OP_0..{num_shards - 1}_CL_.tar")


def manifest_line(sample: ExportSample, audio_filepath: str, **extra: Any) -> dict[str, Any]:
    """One NeMo manifest entry: NeMo's fields first, then the provenance."""
    line: dict[str, Any] = {"audio_filepath": audio_filepath, "duration": sample.duration, "text": sample.text or "", **extra}
    line.update({"id": sample.id, "speaker": sample.speaker, "lang": sample.language})
    for name, value in sample.provenance().items():
        if name not in _NEMO_KEYS and name not in ("language",):
            line[name] = value
    line["meta"] = json_safe(sample.meta)
    return line


def _write_line(handle: IO[str], line: dict[str, Any]) -> None:
    handle.write(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n")


def export_nemo(output: str | Path, to: str | Path, options: NemoOptions | None = None, *, progress: bool = True) -> ExportResult:
    """Write a NeMo manifest of the output in `to`: over audio files, or tarred (``options.tarred``)."""
    options = options or NemoOptions()
    with ExportRun("nemo_tarred" if options.tarred else "nemo", output, to, options, progress=progress) as run:
        if options.tarred:
            return _tarred(run, options.num_shards)
        return _plain(run)


def _plain(run: ExportRun) -> ExportResult:
    target = run.target
    with open(target.staged(PLAIN_MANIFEST), "w", encoding="utf-8") as manifest:
        for sample in run.samples():
            name = f"{AUDIO_DIR}/{sample.member_name}"
            target.staged(name).write_bytes(sample.audio)
            path = target.commit(name, listed=False)
            _write_line(manifest, manifest_line(sample, str(path)))
    target.commit(PLAIN_MANIFEST)
    details = {"manifest_filepath": str(target.final(PLAIN_MANIFEST)), "audio_dir": AUDIO_DIR, "audio_files": target.bulk_files}
    return run.finish(details, (PLAIN_MANIFEST,), bulk_dirs=(AUDIO_DIR,))


class _ShardTar:
    """One ``audio_<n>.tar`` being written in the staging folder: reproducible members, then commit."""

    def __init__(self, target: ExportDir, shard: int):
        self.target, self.shard, self.count = target, shard, 0
        self.tar = tarfile.open(target.staged(tar_name(shard)), mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closed in commit

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), FIXED_MTIME, 0o644
        self.tar.addfile(info, io.BytesIO(data))
        self.count += 1

    def commit(self) -> int:
        self.tar.close()
        self.target.commit(tar_name(self.shard))
        return self.count


def _tarred(run: ExportRun, num_shards: int) -> ExportResult:
    if run.total < num_shards:
        raise ExportError(f"{run.source.root} has {run.total} samples to export, fewer than {num_shards} shards; pass a smaller --num-shards")
    target = run.target
    sizes: list[int] = []
    current: _ShardTar | None = None
    with open(target.staged(TARRED_MANIFEST), "w", encoding="utf-8") as manifest:
        for n, sample in enumerate(run.samples()):
            shard = n * num_shards // run.total  # contiguous runs, sizes differ by at most one
            if current is None or current.shard != shard:
                if current is not None:
                    sizes.append(current.commit())
                current = _ShardTar(target, shard)
            current.add(sample.member_name, sample.audio)
            _write_line(manifest, manifest_line(sample, sample.member_name, shard_id=shard))
        if current is not None:
            sizes.append(current.commit())
    target.commit(TARRED_MANIFEST)
    details = {
        "manifest_filepath": str(target.final(TARRED_MANIFEST)),
        "tarred_audio_filepaths": tarred_pattern(run.to, num_shards),
        "num_shards": num_shards,
        "samples_per_shard": sizes,
    }
    return run.finish(details, ("audio_*.tar", TARRED_MANIFEST))
