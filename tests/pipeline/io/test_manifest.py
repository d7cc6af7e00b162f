import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline.io.manifest import Column, in_unit_interval, read_manifest, validate_manifest, validate_table
from pipeline.io.manifest_build import build_manifest
from pipeline.registry import job_columns
from tests.pipeline.conftest import tone


def _problems(report):
    return [(p.severity, p.row, p.column) for p in report.problems]


def test_duplicate_and_null_ids_are_structural(tmp_path):
    table = pa.table({"id": ["a", "b", "a", None], "audio": ["x.wav", None, "y.wav", "z.wav"]})
    report = validate_table(table, base_dir=tmp_path)
    assert not report.ok
    found = _problems(report)
    assert ("error", 2, "id") in found  # the second 'a'
    assert ("error", 3, "id") in found  # null id
    assert ("row", 1, "audio") in found  # null audio: a row problem, not structural
    assert ("row", 0, "audio") in found  # x.wav does not exist
    assert "duplicate id 'a' in rows [0, 2]" in report.format()


def test_missing_column_and_wrong_type(tmp_path):
    report = validate_table(pa.table({"id": ["a"], "duration": ["3.0"]}), base_dir=tmp_path)
    messages = report.format()
    assert not report.ok
    assert "column 'audio': required column is missing" in messages
    assert "column 'duration': expected number values" in messages


def test_job_parameters_are_checked_per_row(tmp_path):
    sf.write(tmp_path / "a.wav", tone(0.1, 16000), 16000)
    table = pa.table({"id": ["a", "b"], "audio": ["a.wav", "a.wav"], "denoise_ratio": [0.5, 1.5]})
    columns = [Column("id", "string", required=True), Column("audio", "string", required=True, is_path=True),
               Column("denoise_ratio", "number", check=in_unit_interval)]
    report = validate_table(table, columns, base_dir=tmp_path)
    assert [(p.row, p.column) for p in report.errors] == [(1, "denoise_ratio")]
    assert "row 1 (id 'b'), column 'denoise_ratio': must be within [0, 1], got 1.5" in report.format()


def test_ids_colliding_as_keys_are_rejected(tmp_path):
    # 'x y' and 'x/y' differ, but a key derived naively would collide; ours must not, so no error
    report = validate_table(pa.table({"id": ["x y", "x/y"], "audio": ["a", "b"]}), base_dir=tmp_path, check_files=False)
    assert report.ok


def test_build_reads_layouts_sidecars_and_is_stable(tmp_path):
    libri = tmp_path / "corpus" / "LibriTTS" / "19" / "198"
    vctk = tmp_path / "corpus" / "VCTK" / "p225"
    libri.mkdir(parents=True)
    vctk.mkdir(parents=True)
    sf.write(libri / "19_198_000000_000000.wav", tone(1.0, 24000), 24000)
    (libri / "19_198_000000_000000.normalized.txt").write_text("Hello  world.\n")
    (libri / "19_198_000000_000000.original.txt").write_text("HELLO world")
    sf.write(vctk / "p225_001.flac", tone(0.5, 48000, channels=2), 48000)
    (vctk / "p225_001.txt").write_text("Please call Stella.")
    sf.write(tmp_path / "corpus" / "loose.ogg", tone(0.5, 16000), 16000, format="OGG")
    first = build_manifest(tmp_path / "corpus", relative_to=tmp_path)
    second = build_manifest(tmp_path / "corpus", relative_to=tmp_path)
    assert first.equals(second)
    rows = {r["id"]: r for r in first.to_pylist()}
    libri_row = rows["LibriTTS/19/198/19_198_000000_000000"]
    assert libri_row["text"] == "Hello world." and libri_row["speaker"] == "19"
    assert libri_row["sample_rate"] == 24000 and libri_row["duration"] == pytest.approx(1.0)
    assert rows["VCTK/p225/p225_001"]["speaker"] == "p225"
    assert rows["VCTK/p225/p225_001"]["channels"] == 2
    assert rows["loose"]["speaker"] is None and rows["loose"]["text"] is None
    pq.write_table(first, tmp_path / "m.parquet")
    assert validate_manifest(tmp_path / "m.parquet").problems == []


def _string_like_tables():
    ids, audio = ["a", "b"], ["a.wav", "a.wav"]
    yield "dictionary", pa.table({"id": pa.array(ids).dictionary_encode(), "audio": pa.array(audio).dictionary_encode()})
    yield "large_string", pa.table({"id": pa.array(ids, pa.large_string()), "audio": pa.array(audio, pa.large_string())})
    yield "dictionary<int8, large_string>", pa.table(
        {"id": pa.DictionaryArray.from_arrays(pa.array([0, 1], pa.int8()), pa.array(ids, pa.large_string())), "audio": audio}
    )
    if hasattr(pa, "string_view"):
        yield "string_view", pa.table({"id": pa.array(ids, pa.string_view()), "audio": pa.array(audio, pa.string_view())})


def test_every_arrow_string_type_is_accepted_and_read_as_strings(tmp_path):
    """pandas/Polars write categoricals as dictionaries; Polars and DuckDB write string views."""
    import pandas as pd

    sf.write(tmp_path / "a.wav", tone(0.1, 16000), 16000)
    for name, table in _string_like_tables():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path)
        report = validate_manifest(path, job_columns("prepare"))
        assert report.ok and not report.row_problems, (name, report.format())
        read = read_manifest(path)
        assert read.column("id").to_pylist() == ["a", "b"], name
        assert all(pa.types.is_string(f.type) or pa.types.is_large_string(f.type) for f in read.schema), (name, read.schema)
    frame = pd.DataFrame({"id": pd.Categorical(["a", "b"]), "audio": pd.Categorical(["a.wav", "a.wav"])})
    frame.to_parquet(tmp_path / "pandas.parquet")
    assert validate_manifest(tmp_path / "pandas.parquet").ok
    assert not validate_table(pa.table({"id": pa.array([1, 2]).dictionary_encode(), "audio": ["x", "y"]}), check_files=False).ok


def test_internal_columns_are_refused_in_a_user_manifest_naming_the_column(tmp_path):
    sf.write(tmp_path / "a.wav", tone(0.1, 16000), 16000)
    table = pa.table({"id": ["a"], "audio": ["a.wav"], "tar_key": ["k"], "tar_members": ['{"flac": [0, 99999]}']})
    report = validate_table(table, job_columns("upsample"), base_dir=tmp_path)
    assert not report.ok
    assert {(p.severity, p.column) for p in report.errors} == {("error", "tar_key"), ("error", "tar_members")}
    assert "column 'tar_members': column is internal to the pipeline" in report.format()
    assert validate_table(table, job_columns("upsample"), base_dir=tmp_path, allow_internal=True).ok


def test_files_that_are_not_regular_are_row_problems_saying_what_they_are(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "dir.wav").mkdir()
    table = pa.table({"id": ["p", "d", "z", "m"], "audio": ["pipe.wav", "dir.wav", "/dev/zero", "missing.wav"]})
    report = validate_table(table, base_dir=tmp_path)
    assert report.ok  # row problems: the job runs and records these rows as errors
    messages = {p.sample_id: p.message for p in report.row_problems}
    assert "FIFO" in messages["p"] and "directory" in messages["d"] and "character device" in messages["z"]
    assert messages["m"].startswith("file not found")
