"""`pipeline.io.uri`: one rule for local paths, file:// URIs and remote URIs, used by manifests and decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from pipeline.io.audio import decode_audio
from pipeline.io.manifest import read_manifest, validate_manifest
from pipeline.io.uri import is_uri, local_path, manifest_base, resolve, same_location
from tests.pipeline.conftest import tone


def test_file_uris_are_percent_decoded_and_remote_uris_pass_through(tmp_path):
    assert local_path("file:///data/sub%20dir/a%23b.wav") == "/data/sub dir/a#b.wav"
    assert local_path("file://localhost/data/x%C3%BC.wav") == "/data/xü.wav"
    assert local_path("FILE:///data/x.wav") == "/data/x.wav"
    assert local_path("file://server/share/x.wav") == "file://server/share/x.wav"  # not a local file: kept
    assert local_path("/plain/sub%20dir/x.wav") == "/plain/sub%20dir/x.wav"  # a plain path is taken literally
    assert is_uri("s3://bucket/x.wav") and not is_uri("file:///x.wav") and not is_uri("/x.wav")
    assert resolve("s3://bucket/a%20b.wav", tmp_path) == "s3://bucket/a%20b.wav"
    assert resolve("file:///abs/sub%20dir/x.wav", tmp_path) == "/abs/sub dir/x.wav"
    assert resolve("rel/x.wav", tmp_path) == str(tmp_path / "rel" / "x.wav")
    assert resolve("rel/x.wav", "s3://bucket/manifests") == "s3://bucket/manifests/rel/x.wav"
    assert manifest_base("s3://bucket/manifests/m.parquet") == "s3://bucket/manifests"
    assert same_location("s3://bucket/out/_state/m.parquet", "bucket/out/_state/m.parquet")


def test_manifest_given_as_file_uri_resolves_relative_audio_against_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "sub dir"
    (folder / "clips").mkdir(parents=True)
    sf.write(folder / "clips" / "a.wav", tone(0.25, 16000), 16000)
    manifest = folder / "m.parquet"
    uri_audio = "file://" + str(folder / "clips" / "a.wav").replace(" ", "%20")
    pq.write_table(pa.table({"id": ["rel", "uri"], "audio": ["clips/a.wav", uri_audio]}), manifest)
    manifest_uri = "file://" + str(manifest).replace(" ", "%20")
    monkeypatch.chdir(tmp_path)  # the working directory is not the manifest's folder

    assert manifest_base(manifest_uri) == str(folder)
    assert read_manifest(manifest_uri).num_rows == 2
    report = validate_manifest(manifest_uri)
    assert report.ok and not report.row_problems, report.format()
    paths = [resolve(p, manifest_base(manifest_uri)) for p in ("clips/a.wav", uri_audio)]
    assert paths == [str(folder / "clips" / "a.wav")] * 2
    np.testing.assert_array_equal(decode_audio(uri_audio).samples, decode_audio(paths[0]).samples)


def test_same_location_of_local_paths_follows_links(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert same_location(str(tmp_path / "link" / "m.parquet"), "file://" + str(tmp_path / "real" / "m.parquet"))
    assert not same_location(str(Path(tmp_path) / "a.parquet"), str(Path(tmp_path) / "b.parquet"))
