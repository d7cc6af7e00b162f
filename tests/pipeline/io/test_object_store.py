"""Manifest, audio and output on an S3-compatible object store (a local moto server on 127.0.0.1).

The job runs through `python -m jobs.prepare` with plain s3:// URIs; the endpoint comes from
AWS_ENDPOINT_URL as it would from a cluster's environment. Checks exactly-once output, the
error row of a missing object, and that a resume deletes uncommitted leftovers and skips
committed parts (S3 has no atomic rename: the index part written last is the commit).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml
from pyarrow import fs as pafs

from tests.conftest import REPO_ROOT
from tests.pipeline.conftest import tone

BUCKET = "hsp-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    pytest.importorskip("moto.server", reason="moto[server] is not installed (dev dependency)")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.2)
        else:
            pytest.fail("moto server did not start")
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _s3(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=endpoint, scheme="http", access_key="test", secret_key="test", region="us-east-1", allow_bucket_creation=True
    )


def _put(s3: pafs.S3FileSystem, path: str, data: bytes) -> None:
    with s3.open_output_stream(path) as stream:
        stream.write(data)


def _listing(s3: pafs.S3FileSystem, prefix: str) -> dict[str, int]:
    infos = s3.get_file_info(pafs.FileSelector(prefix, recursive=True))
    return {i.path[len(prefix) + 1 :]: i.size for i in infos if i.type == pafs.FileType.File}


def test_prepare_reads_and_writes_s3(s3_endpoint: str, tmp_path: Path, monkeypatch):
    s3 = _s3(s3_endpoint)
    s3.create_dir(BUCKET)
    ids, uris = [], []
    for i, rate in enumerate([16000, 22050, 44100]):
        buffer = io.BytesIO()
        sf.write(buffer, tone(0.5, rate, freq=200 + 40 * i), rate, format="WAV")
        _put(s3, f"{BUCKET}/corpus/utt{i}.wav", buffer.getvalue())
        ids.append(f"spk/utt{i}")
        uris.append(f"s3://{BUCKET}/corpus/utt{i}.wav")
    ids.append("spk/missing")
    uris.append(f"s3://{BUCKET}/corpus/missing.wav")
    manifest = io.BytesIO()
    pq.write_table(pa.table({"id": ids, "audio": uris}), manifest)
    _put(s3, f"{BUCKET}/manifests/m.parquet", manifest.getvalue())

    out_uri = f"s3://{BUCKET}/prepared"
    spec = tmp_path / "prepare.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "job": "prepare",
                "inputs": {"manifest": f"s3://{BUCKET}/manifests/m.parquet"},
                "outputs": {"output": out_uri, "rows_per_shard": 2},
                "run": {"num_cpus": 4, "progress": False},
            }
        )
    )
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO_ROOT),
        RAY_AUTH_MODE="disabled",
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        AWS_ENDPOINT_URL=f"http://{s3_endpoint}",
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
    )

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "jobs.prepare", str(spec)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )

    first = run()
    assert first.returncode == 0, first.stderr[-3000:]
    files = _listing(s3, f"{BUCKET}/prepared")
    assert not [name for name in files if ".tmp-" in name], files
    index = pq.read_table(f"{BUCKET}/prepared/index.parquet", filesystem=s3)
    errors = pq.read_table(f"{BUCKET}/prepared/errors.parquet", filesystem=s3)
    assert sorted(index.column("id").to_pylist()) == ["spk/utt0", "spk/utt1", "spk/utt2"]
    assert errors.column("id").to_pylist() == ["spk/missing"]
    samples = 0
    for name in files:
        if name.startswith("shards/"):
            with tarfile.open(fileobj=io.BytesIO(s3.open_input_stream(f"{BUCKET}/prepared/{name}").read())) as tar:
                flacs = [m for m in tar.getmembers() if m.name.endswith(".flac")]
                for member in flacs:
                    audio, rate = sf.read(io.BytesIO(tar.extractfile(member).read()))
                    assert rate == 16000 and len(audio) == 8000
                samples += len(flacs)
    assert samples == 3

    # leftovers of a killed writer: an uncommitted shard and a temporary file; a resume removes them
    # and skips the committed parts without rewriting them
    _put(s3, f"{BUCKET}/prepared/shards/shard-{'0' * 20}.tar", b"partial")
    _put(s3, f"{BUCKET}/prepared/index.parquet/.tmp-deadbeef-part-x.parquet", b"partial")
    second = run()
    assert second.returncode == 0, second.stderr[-3000:]
    assert "4 already done, 0 to do" in second.stderr and "removed 2 unfinished file(s)" in second.stderr
    after = _listing(s3, f"{BUCKET}/prepared")
    committed = {k: v for k, v in files.items() if k.startswith(("shards/", "index.parquet/", "errors.parquet/"))}
    assert {k: v for k, v in after.items() if k in committed} == committed
    assert set(after) - set(files) <= {"_state/runs.json"} and not [k for k in after if "0" * 20 in k or ".tmp-" in k]

    # `hsp inspect` reads the S3 output too
    from click.testing import CliRunner

    from pipeline.cli import main

    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, env[key])
    inspected = CliRunner().invoke(main, ["inspect", out_uri, "--json"])
    assert inspected.exit_code == 0, inspected.output
    assert '"complete": true' in inspected.output and '"samples_out": 3' in inspected.output
