"""What mirroring one input tar means: its samples in tar order, the audio to upsample, and what is refused.

A mirrored output keeps the archive's layout: the same keys, in the same order, every other member
byte for byte. So the plan of a tar is read from its headers alone (no data): each sample's
members with their byte spans, the audio members to upsample (every ``flac``/``wav``/``mp3``/
``ogg``/``opus`` member, or the one `audio_member` names), and, for a sample that cannot be written
as it is, the reason it becomes an error row instead:

- its key is not a safe tar path (absolute, a ``..`` component, a NUL, empty, not UTF-8): keys are never
  rewritten, so such a sample is refused, not renamed;
- one of its members is a link (symbolic or hard) or not a regular file: links are never written;
- a member appears twice, or the tar ends inside a member's data (a truncated download);
- writing the upsampled audio under its new extension would give two members one name
  (``--audio-ext flac`` on a sample with both ``wav`` and ``flac``).

Members without an extension (``README``) belong to no sample and pass through when their name
is safe; directory entries carry nothing and are dropped. A header that fails its checksum inside
the archive would make every reader stop there silently (tarfile included), so such a tar is
refused as a whole, naming the byte offset, rather than mirrored short.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass, field

from pipeline.io.shards import AUDIO_EXTENSIONS, ShardReadError, open_shard, split_member

_TRAILER_CHUNK = 1 << 20


@dataclass
class MirrorSample:
    """One sample of an input tar: key, position, regular-file members, audio to upsample, or why it is refused."""

    key: str
    position: int
    members: dict[str, tuple[int, int]] = field(default_factory=dict)  # ext -> (offset, size)
    audio: list[str] = field(default_factory=list)  # members to upsample, in tar order
    out_exts: dict[str, str] = field(default_factory=dict)  # upsampled ext -> ext written
    problem: tuple[str, str] | None = None  # (error type, message): the sample is an error row

    def refuse(self, error: str, message: str) -> None:
        if self.problem is None:  # the first reason is the one reported
            self.problem = (error, message)


@dataclass
class TarPlan:
    """The plan of one input tar (see the module docstring); `part` names its commit in the output."""

    tar: str
    name: str  # relative path of the mirrored tar in the output
    part: str
    size: int
    samples: list[MirrorSample]
    loose_members: list[str] = field(default_factory=list)  # safe names without an extension: passed through
    dropped_members: list[str] = field(default_factory=list)  # directories and unsafe loose names: not written
    truncated: bool = False  # the file ends inside its last member's data (that sample is refused)

    @property
    def upsample_count(self) -> int:
        return sum(len(s.audio) for s in self.samples if s.problem is None)

    def fingerprint(self) -> str:
        """Digest of what the plan reads: names, keys, member spans (a changed tar gives another digest)."""
        body = [self.name, self.size, [(s.key, sorted(s.members.items()), s.audio) for s in self.samples], self.loose_members]
        return hashlib.sha256(json.dumps(body).encode("utf-8")).hexdigest()


def unsafe_key_reason(key: str) -> str | None:
    """Why `key` is not a safe tar path to write verbatim; None when it is."""
    if not key:
        return "empty"
    if "\x00" in key:
        return "contains a NUL character"
    if key.startswith("/"):
        return "absolute path"
    if ".." in key.split("/"):
        return "has a '..' component"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:  # tarfile keeps undecodable name bytes as surrogates; no index could hold them
        return "not valid UTF-8"
    return None


def _unsafe_name(name: str) -> bool:
    return "\x00" in name or name.startswith("/") or ".." in name.split("/")


def mirror_part(name: str) -> str:
    """The commit name of the mirrored tar `name` (index/errors part names)."""
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:20]


def plan_tar(tar_path: str, name: str, *, audio_member: str | None = None, audio_ext: str | None = None) -> TarPlan:
    """Read the headers of `tar_path` into its `TarPlan` (see the module docstring).

    audio_member: upsample only this member (extension) of each sample; None: every audio member.
    audio_ext: write upsampled audio with this extension (e.g. ``flac``); None keeps each member's own.

    Raises:
        ShardReadError: the tar cannot be opened or read, or a header inside it is damaged.
    """
    samples: dict[str, MirrorSample] = {}
    loose: list[str] = []
    dropped: list[str] = []
    try:
        with open_shard(tar_path) as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(0)
            with tarfile.open(fileobj=handle, mode="r:") as tar:
                truncated = False
                members = iter(tar)
                while True:
                    try:
                        info = next(members)
                    except StopIteration:
                        break
                    except tarfile.ReadError:
                        if truncated:  # the tar ends inside the member just refused: nothing follows
                            break
                        raise
                    truncated = _add_member(info, samples, loose, dropped, size) or truncated
                end = tar.offset
            if not truncated:
                _check_trailer(handle, end, size, tar_path)
    except (tarfile.TarError, OSError) as exc:
        raise ShardReadError(f"cannot read tar {tar_path}: {exc}") from exc
    for sample in samples.values():
        _choose_audio(sample, audio_member, audio_ext)
    return TarPlan(tar_path, name, mirror_part(name), size, list(samples.values()), loose, dropped, truncated)


def _add_member(info: tarfile.TarInfo, samples: dict[str, MirrorSample], loose: list[str], dropped: list[str], size: int) -> bool:
    """Add one header to the plan; True when the tar ends inside this member's data."""
    split = split_member(info.name)
    if info.isdir() or split is None:
        (loose if info.isfile() and not _unsafe_name(info.name) else dropped).append(info.name)
        return info.offset_data + info.size > size
    key, ext = split
    sample = samples.setdefault(key, MirrorSample(key, len(samples)))
    if (reason := unsafe_key_reason(key) or unsafe_key_reason(info.name)) is not None:
        sample.refuse("UnsafeKey", f"member {info.name!r}: its key is not a safe tar path ({reason}); keys are kept "
                      "verbatim, never rewritten, so the sample is not written")
    if info.issym() or info.islnk():
        kind = "symbolic" if info.issym() else "hard"
        sample.refuse("LinkMember", f"member {info.name!r} is a {kind} link to {info.linkname!r}; links are never written, so the sample is not written")
        return False
    if not info.isfile():
        sample.refuse("NotAFile", f"member {info.name!r} is not a regular file; the sample is not written")
        return False
    truncated = info.offset_data + info.size > size
    if ext in sample.members:
        sample.refuse("DuplicateMember", f"member {info.name!r} appears twice in the tar; the sample is not written")
        return truncated
    if truncated:
        sample.refuse("TruncatedMember", f"member {info.name!r} declares {info.size} bytes but the tar ends "
                      f"{size - info.offset_data} bytes into it (truncated file?)")
    sample.members[ext] = (info.offset_data, info.size)
    return truncated


def _check_trailer(handle, end: int, size: int, tar_path: str) -> None:
    """Everything after the last header tarfile read must be zeros (end-of-archive blocks), else a header is damaged."""
    handle.seek(end)
    position = end
    while position < size:
        chunk = handle.read(min(_TRAILER_CHUNK, size - position))
        if not chunk:
            return
        if chunk.strip(b"\x00"):
            raise ShardReadError(
                f"{tar_path}: the tar header at byte {end} is damaged (it fails its checksum) and {size - end} bytes "
                "follow it; every reader would stop there, so this tar is not mirrored short: repair or re-download "
                "it, or leave it out of the input"
            )
        position += len(chunk)


def _choose_audio(sample: MirrorSample, audio_member: str | None, audio_ext: str | None) -> None:
    if audio_member is not None:
        sample.audio = [audio_member] if audio_member in sample.members else []
    else:
        sample.audio = [ext for ext in sample.members if ext in AUDIO_EXTENSIONS]
    sample.out_exts = {ext: audio_ext or ext for ext in sample.audio}
    written = [sample.out_exts.get(ext, ext) for ext in sample.members]
    clashes = sorted({ext for ext in written if written.count(ext) > 1})
    if clashes:
        sources = ", ".join(ext for ext in sample.members if sample.out_exts.get(ext, ext) in clashes)
        sample.refuse("MemberCollision", f"writing members {sources} of {sample.key!r} as .{clashes[0]} would give two "
                      f"members one name; choose one with --audio-member, or keep the extensions")
