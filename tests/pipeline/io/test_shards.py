"""The one shard reader: WebDataset's member-name rule, and the three readers agreeing on one tar."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from pipeline.io.shards import iter_samples, read_members, read_samples, scan_tar, split_member


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_member_names_split_as_webdataset_does() -> None:
    assert split_member("abc.w2v.npy") == ("abc", "w2v.npy")
    assert split_member("dir/abc.seg.flac") == ("dir/abc", "seg.flac")
    assert split_member("dir.d/abc.json") == ("dir.d/abc", "json")  # dots in folders are not extensions
    assert split_member("README") is None and split_member("dir/.hidden") is None and split_member("x/") is None


def test_streaming_seeking_and_offset_readers_agree(tmp_path: Path) -> None:
    members = [("a.flac", b"A" * 700), ("a.json", b"{}"), ("NOTES", b"not a member"), ("b.flac", b"B" * 10),
               ("b.w2v.npy", b"W" * 3000), ("c.flac", b"C")]
    shard = _tar(tmp_path / "s.tar", members)
    streamed = dict(iter_samples(str(shard)))
    assert streamed == {"a": {"flac": b"A" * 700, "json": b"{}"}, "b": {"flac": b"B" * 10, "w2v.npy": b"W" * 3000}, "c": {"flac": b"C"}}
    assert dict(iter_samples(str(shard), exts=["flac"], keys=["b"])) == {"b": {"flac": b"B" * 10}}
    assert read_samples(str(shard), ["b", "zz"], ["w2v.npy"], limits={"w2v.npy": 16}) == {"b": {"w2v.npy": b"W" * 16}}
    indexed = {sample.key: read_members(str(shard), sample.members) for sample in scan_tar(str(shard))}
    assert indexed == streamed
    assert [s.audio_member for s in scan_tar(str(shard))] == ["flac", "flac", "flac"]
