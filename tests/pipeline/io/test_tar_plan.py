"""Mirror planning and writing without Ray: key safety, links, collisions, damaged tars, list files, names."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import webdataset as wds

from pipeline.errors import InputError
from pipeline.io.mirror_writer import write_mirror_tar
from pipeline.io.output import OutputDir
from pipeline.io.shards import ShardReadError
from pipeline.io.tar_lists import mirror_names
from pipeline.io.tar_plan import plan_tar, unsafe_key_reason
from pipeline.io.tar_source import expand_tar_spec, is_tar_input


def _tar(path: Path, entries: list[tuple[str, bytes | None, str]]) -> Path:
    """entries: (name, data, kind) with kind file | dir | sym | hard."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode, info.uname = 1234, 0o640, "someone"
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.type, info.linkname = (tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE), "a.b/x.txt"
                tar.addfile(info)
    return path


ENTRIES = [
    ("dir.d/", None, "dir"),
    ("a.b/x.wav", b"W" * 10, "file"), ("a.b/x.txt", b"t1", "file"), ("a.b/x.seg.npy", b"N", "file"),
    ("README", b"readme", "file"),
    ("../up.wav", b"W", "file"), ("/abs.flac", b"F", "file"),
    ("link.txt", None, "sym"), ("link.wav", b"W", "file"), ("hard.json", None, "hard"),
    ("dup.flac", b"1", "file"), ("dup.flac", b"2", "file"),
    ("both.flac", b"F" * 4, "file"), ("both.wav", b"W" * 4, "file"), ("both.json", b"{}", "file"),
    ("quiet.txt", b"no audio", "file"),
]


def test_plan_refuses_unsafe_keys_links_duplicates_and_keeps_order(tmp_path):
    plan = plan_tar(str(_tar(tmp_path / "in.tar", ENTRIES)), "in.tar")
    samples = {s.key: s for s in plan.samples}
    assert [s.key for s in plan.samples] == ["a.b/x", "../up", "abs", "link", "hard", "dup", "both", "quiet"]
    # (the shared reader's split drops the leading "/" of "/abs.flac"; the member name still refuses it)
    assert [s.position for s in plan.samples] == list(range(8))
    assert samples["a.b/x"].problem is None and samples["a.b/x"].audio == ["wav"] and samples["a.b/x"].out_exts == {"wav": "wav"}
    assert set(samples["a.b/x"].members) == {"wav", "txt", "seg.npy"}
    assert samples["../up"].problem[0] == samples["abs"].problem[0] == "UnsafeKey"
    assert samples["link"].problem[0] == samples["hard"].problem[0] == "LinkMember"
    assert samples["dup"].problem[0] == "DuplicateMember"
    assert samples["both"].audio == ["flac", "wav"] and samples["both"].problem is None  # every audio member
    assert samples["quiet"].audio == [] and samples["quiet"].problem is None  # passes through
    assert plan.loose_members == ["README"] and plan.dropped_members == ["dir.d"]
    assert plan.upsample_count == 3  # x.wav, both.flac, both.wav
    for key, reason in (("ok/k.ey", None), ("a/../b", "'..'"), ("/x", "absolute"), ("a\x00b", "NUL"), ("", "empty"), ("a\udcff", "UTF-8")):
        assert (unsafe_key_reason(key) is None) if reason is None else reason in unsafe_key_reason(key)

    one = {s.key: s for s in plan_tar(plan.tar, "in.tar", audio_member="wav", audio_ext="flac").samples}
    assert one["a.b/x"].out_exts == {"wav": "flac"}
    assert one["both"].problem[0] == "MemberCollision" and "--audio-member" in one["both"].problem[1]  # wav->flac meets flac
    all_flac = {s.key: s for s in plan_tar(plan.tar, "in.tar", audio_ext="flac").samples}
    assert all_flac["both"].problem[0] == "MemberCollision"
    assert plan_tar(plan.tar, "in.tar").fingerprint() == plan.fingerprint()
    assert plan_tar(plan.tar, "other.tar").fingerprint() != plan.fingerprint()


def test_truncated_and_damaged_tars(tmp_path):
    whole = _tar(tmp_path / "whole.tar", [("a.txt", b"a" * 700, "file"), ("b.wav", b"w" * 5000, "file")]).read_bytes()
    (tmp_path / "cut.tar").write_bytes(whole[:3000])  # inside b.wav's data
    cut = plan_tar(str(tmp_path / "cut.tar"), "cut.tar")
    samples = {s.key: s for s in cut.samples}
    assert samples["a"].problem is None and samples["b"].problem[0] == "TruncatedMember" and cut.truncated
    write_mirror_tar(cut, OutputDir(str(tmp_path / "out")), {"a"}, lambda key, ext: b"")  # the rest stays intact
    with tarfile.open(tmp_path / "out" / "cut.tar") as tar:
        assert [(m.name, tar.extractfile(m).read()) for m in tar] == [("a.txt", b"a" * 700)]
    damaged = bytearray(whole)
    second_header = whole.index(b"b.wav", 1024) // 512 * 512
    damaged[second_header + 148 : second_header + 156] = b"0000000\x00"  # wrong checksum
    (tmp_path / "damaged.tar").write_bytes(bytes(damaged))
    with pytest.raises(ShardReadError, match=r"damaged .* not mirrored short"):
        plan_tar(str(tmp_path / "damaged.tar"), "damaged.tar")


def test_writer_keeps_order_headers_and_bytes(tmp_path):
    source = _tar(tmp_path / "in.tar", ENTRIES)
    plan = plan_tar(str(source), "sub/in.tar", audio_ext="flac", audio_member="wav")
    written = {s.key for s in plan.samples if s.problem is None}
    new = {("a.b/x", "wav"): b"NEW-X", ("link", "wav"): b"unused"}
    out = OutputDir(str(tmp_path / "out"))
    write_mirror_tar(plan, out, written, lambda key, ext: new[(key, ext)])
    with tarfile.open(tmp_path / "out" / "sub" / "in.tar") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        data = {m.name: tar.extractfile(m).read() for m in members}
    # same order; the wav is replaced in place as .flac; failed samples (unsafe, links, duplicates) and dirs left out
    assert names == ["a.b/x.flac", "a.b/x.txt", "a.b/x.seg.npy", "README", "quiet.txt"]
    assert data["a.b/x.flac"] == b"NEW-X" and data["a.b/x.txt"] == b"t1" and data["README"] == b"readme"
    assert all(m.mtime == 1234 and m.mode == 0o640 and m.uname == "someone" and m.isfile() for m in members)
    assert not list((tmp_path / "out" / "sub").glob(".tmp-*"))
    keys = [s["__key__"] for s in wds.WebDataset(str(tmp_path / "out" / "sub" / "in.tar"), shardshuffle=False)]
    assert keys == ["a.b/x", "quiet"]


def test_list_files_and_mirror_names(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        for n in range(2):
            _tar(tmp_path / folder / f"shard-{n}.tar", [("k.txt", b"x", "file")])
    listing = tmp_path / "urls.txt"
    listing.write_text("# shards\n\na/shard-{0..1}.tar\n" + f"{tmp_path}/b/shard-0.tar\n")
    assert is_tar_input(str(listing))
    tars = expand_tar_spec(str(listing))
    assert tars == [str(tmp_path / "a" / "shard-0.tar"), str(tmp_path / "a" / "shard-1.tar"), str(tmp_path / "b" / "shard-0.tar")]
    assert list(mirror_names(tars).values()) == ["a/shard-0.tar", "a/shard-1.tar", "b/shard-0.tar"]  # same names apart
    assert mirror_names(tars[:2]) == {tars[0]: "shard-0.tar", tars[1]: "shard-1.tar"}
    with pytest.raises(InputError, match="mixes local tars"):
        mirror_names([tars[0], "s3://bucket/x.tar"])
    bad = tmp_path / "bad.txt"
    bad.write_text("a/shard-0.parquet\n")
    with pytest.raises(InputError, match="line 1"):
        expand_tar_spec(str(bad))
