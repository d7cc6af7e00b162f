"""Writing the mirror of one input tar: the same members in the same order, upsampled audio in place.

The input tar is streamed once, member by member (memory: one member's copy buffer, plus one
upsampled member at a time): a member of a written sample is copied with its own header fields
(name, mode, mtime, owner) and its bytes unchanged, except the audio members being replaced, which
keep their place and header and get the new bytes (and the new extension with ``--audio-ext``).
Members of samples that failed are left out; members without an extension pass through; links and
directories are never written. The tar goes to a temporary name beside its final one and is renamed
into place when complete, so a reader never sees half a tar.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import uuid
from collections.abc import Callable, Iterator

from pipeline.io.output import TMP_PREFIX, OutputDir
from pipeline.io.shards import open_shard, split_member
from pipeline.io.tar_plan import TarPlan


def _header(info: tarfile.TarInfo, name: str, size: int) -> tarfile.TarInfo:
    header = tarfile.TarInfo(name)
    header.size = size
    header.mtime = info.mtime
    header.mode = info.mode
    header.uid, header.gid, header.uname, header.gname = info.uid, info.gid, info.uname, info.gname
    return header


def _members(reader: tarfile.TarFile, plan: TarPlan) -> Iterator[tarfile.TarInfo]:
    """The tar's headers in order; a tar the plan found truncated ends where its data ends."""
    members = iter(reader)
    while True:
        try:
            yield next(members)
        except StopIteration:
            return
        except tarfile.ReadError:
            if plan.truncated:
                return
            raise


def write_mirror_tar(plan: TarPlan, out: OutputDir, written_keys: set[str], replacement: Callable[[str, str], bytes]) -> int:
    """Write `plan.tar`'s mirror at ``OUT/<plan.name>``; returns the bytes of member data written.

    written_keys: the samples to write (the others are error rows); replacement(key, ext): the new
    bytes of an upsampled member of a written sample.
    """
    by_key = {sample.key: sample for sample in plan.samples}
    loose = set(plan.loose_members)
    folder, base = posixpath.split(plan.name)
    final = out.path(folder, base)
    tmp = out.path(folder, f"{TMP_PREFIX}{uuid.uuid4().hex}-{base}")
    written = 0
    with out.writing(final, tmp=tmp):
        out.fs.create_dir(out.path(folder), recursive=True)
        with (
            open_shard(plan.tar, stream=True) as source,
            tarfile.open(fileobj=source, mode="r|") as reader,
            out.fs.open_output_stream(tmp) as stream,
            tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as writer,
        ):
            for info in _members(reader, plan):
                if not info.isfile():
                    continue
                split = split_member(info.name)
                if split is None:
                    if info.name in loose:
                        writer.addfile(_header(info, info.name, info.size), reader.extractfile(info))
                        written += info.size
                    continue
                key, ext = split
                sample = by_key.get(key)
                if sample is None or key not in written_keys:
                    continue
                if ext in sample.out_exts:
                    data = replacement(key, ext)
                    writer.addfile(_header(info, f"{key}.{sample.out_exts[ext]}", len(data)), io.BytesIO(data))
                    written += len(data)
                else:
                    writer.addfile(_header(info, info.name, info.size), reader.extractfile(info))
                    written += info.size
        out.fs.move(tmp, final)
    return written
