"""The CPU side of the GPU device check (bench/device_check.sh): scripts parse, `gpu` tests are collected
and skipped here with a reason, one source of tolerances, the table printer and the benchmark runner."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from pipeline.testing.tolerances import BATCH_VS_ALONE, CUDA_VS_CPU
from tests.conftest import REPO_ROOT

SCRIPTS = ("bench/device_check.sh", "bench/device_prepare.sh")
GPU_TESTS = REPO_ROOT / "tests" / "gpu"


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_parse(script: str) -> None:
    done = subprocess.run(["bash", "-n", str(REPO_ROOT / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_gpu_tests_are_collected_and_skipped_with_the_reason_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is visible here: the gpu tests would run, not skip")
    env = {k: v for k, v in os.environ.items() if k != "HSP_GPU_TEST_DEVICE"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/gpu", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    counts = re.search(r"(\d+) skipped", done.stdout)
    assert counts and int(counts.group(1)) >= 8 and not re.search(r"\d+ (passed|failed|errors?)\b", done.stdout), done.stdout
    assert "needs a CUDA device: torch.cuda.is_available() is False" in done.stdout


def test_every_gpu_test_lives_in_tests_gpu_and_is_marked() -> None:
    """device_check.sh runs `pytest tests/gpu -m gpu`: a gpu test elsewhere, or unmarked there, would be missed."""
    for path in GPU_TESTS.glob("test_*.py"):
        assert "pytestmark = pytest.mark.gpu" in path.read_text(), path
    for path in (REPO_ROOT / "tests").rglob("test_*.py"):
        if GPU_TESTS not in path.parents and path.name != "test_device_check.py":
            assert "mark.gpu" not in path.read_text(), f"{path}: gpu tests belong in tests/gpu"


def test_tolerances_have_one_source() -> None:
    """The gpu tests, the table and the docs take their bounds from pipeline.testing.tolerances."""
    stages = (GPU_TESTS / "test_cuda_stages.py").read_text()
    assert "CUDA_VS_CPU[key]" in stages and not re.search(r"\d+e-\d+", stages)  # no bound written in the tests
    for key in CUDA_VS_CPU:
        assert f'check("{key}"' in stages, key
    assert set(CUDA_VS_CPU) == set(BATCH_VS_ALONE)
    cpu = (REPO_ROOT / "tests" / "pipeline" / "stages" / "test_model_stage_batches.py").read_text()
    for key in BATCH_VS_ALONE:
        assert f'"{key}")' in cpu, key
    docs = (REPO_ROOT / "docs" / "benchmarks.md").read_text()
    for table in (BATCH_VS_ALONE, CUDA_VS_CPU):
        for tolerance in table.values():
            assert tolerance.describe() in docs, tolerance.describe()


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.gpu.test_cuda_stages" name="test_w2v_on_device_equals_cpu" time="1.0"/>
<testcase classname="tests.gpu.test_cuda_stages" name="test_tts_synthesis_on_device_equals_cpu" time="1.0">
  <failure message="AssertionError: ['batch 8: 0.01 &gt; generated waveform'] | x">trace</failure></testcase>
<testcase classname="tests.gpu.test_upsample_cuda" name="test_hsp_upsample_on_device_end_to_end" time="0.0">
  <skipped type="pytest.skip" message="`hsp upsample` needs Ray, which is not installed on this machine">skip</skipped></testcase>
</testsuite></testsuites>"""


def test_the_table_printer_on_fake_results() -> None:
    from bench.device_table import format_table, read_junit, rows_for

    w2v, tts = CUDA_VS_CPU["w2v"], CUDA_VS_CPU["tts"]
    measurements = [
        {"check": "w2v on cuda vs cpu", "batch": 8, "measured": w2v.max_abs / 10, "max_abs": w2v.max_abs, "unit": w2v.unit},
        {"check": "tts on cuda vs cpu", "batch": 8, "measured": tts.max_abs * 5, "max_abs": tts.max_abs, "unit": tts.unit},
        {"check": "denoise on cuda vs cpu", "batch": 1, "measured": 2.0, "max_abs": 99.0, "unit": "int16 LSB"},
    ]
    bench = {"environment": {"gpu": "NVIDIA H200", "torch": "2.11.0", "cuda": "13.0", "cudnn_allow_tf32": True, "matmul_allow_tf32": False},
             "results": [
                 {"name": "speechsr48k_stage", "status": "ran", "hours_per_gpu_hour": 812.34, "rtf": 0.00123, "audio_seconds": 600.0,
                  "wall_seconds": 2.66, "peak_gpu_mib": 3072.0, "weights": "released SpeechSR-48k", "batch": "8 clips"},
                 {"name": "speechsr48k_hsp_upsample", "status": "skipped", "reason": "needs Ray (No module named 'ray')"},
                 {"name": "vc_synthesis", "status": "failed", "reason": "RuntimeError: Expected all tensors to be on the same device"},
             ]}
    tests = read_junit(JUNIT)
    assert [(t.name, t.status) for t in tests] == [("test_w2v_on_device_equals_cpu", "passed"),
                                                    ("test_tts_synthesis_on_device_equals_cpu", "failed"),
                                                    ("test_hsp_upsample_on_device_end_to_end", "skipped")]
    table = format_table(rows_for(tests, measurements, bench), bench["environment"])
    lines = table.splitlines()
    assert lines[0].startswith("device check: gpu NVIDIA H200, torch 2.11.0, cuda 13.0.") and "TF32" in lines[0]
    body = [line for line in lines if line.startswith("| ")][1:]
    assert all(line.count(" | ") == 4 for line in body), body  # five columns, no stray '|' from messages
    assert f"| diff | w2v on cuda vs cpu, batch 8 | within | {w2v.max_abs / 10:.3g} abs | {w2v.describe()} |" in table
    assert f"| diff | tts on cuda vs cpu, batch 8 | OVER | {tts.max_abs * 5:.3g} abs | {tts.describe()} |" in table
    assert "MISMATCH: the test recorded 99.0 int16 LSB" in table  # a bound that is not pipeline.testing.tolerances'
    assert "| bench | speechsr48k_stage | ran | 812.3 h audio / GPU-h (RTF 0.0012) |" in table and "peak 3.0 GiB" in table
    assert "| bench | speechsr48k_hsp_upsample | skipped |  | needs Ray (No module named 'ray') |" in table
    assert "| bench | vc_synthesis | failed |" in table and "| test | test_tts_synthesis_on_device_equals_cpu | failed |" in table
    missing = format_table(rows_for(None, None, None))
    assert "no JUnit report" in missing and "no benchmark results" in missing


def test_the_benchmark_runner_records_skips_and_failures(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import json

    import bench.bench_device as bench_device

    def ran(args):
        return {"hours_per_gpu_hour": 1.0}

    def skipped(args):
        raise bench_device.Skipped("needs Ray")

    def broken(args):
        raise RuntimeError("CUDA error: boom")

    monkeypatch.setattr(bench_device, "BENCHMARKS", {"a": ran, "b": skipped, "c": broken})
    out = tmp_path / "bench.json"
    assert bench_device.main(["--device", "cpu", "--out", str(out)]) == 0
    records = json.loads(out.read_text())["results"]
    assert [(r["name"], r["status"]) for r in records] == [("a", "ran"), ("b", "skipped"), ("c", "failed")]
    assert records[1]["reason"] == "needs Ray" and records[2]["reason"] == "RuntimeError: CUDA error: boom"
