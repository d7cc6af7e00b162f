"""The device check's one table: the `gpu` tests, the differences they measured, the GPU benchmarks.

Reads what bench/device_check.sh collected (pytest's JUnit XML, the gpu tests' measurements, the
benchmarks' JSON) and prints one Markdown table, ready for docs/benchmarks.md. Every measured
difference is printed beside its stated bound from `pipeline.testing.tolerances` (the one source the tests
use); a recorded bound that differs from it is flagged, as is a file that is missing.

    python bench/device_table.py --junit gpu-tests.xml --measurements measurements.json --bench bench.json
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.testing.tolerances import CUDA_VS_CPU, Tolerance

HEADER = ("part", "check", "result", "measured", "stated / notes")


@dataclass(frozen=True)
class TestOutcome:
    name: str
    status: str  # passed | failed | error | skipped
    message: str = ""


def read_junit(text: str) -> list[TestOutcome]:
    """Test outcomes of a pytest JUnit XML report."""
    outcomes = []
    for case in ET.fromstring(text).iter("testcase"):
        status, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                status = {"failure": "failed"}.get(tag, tag)
                message = (node.get("message") or node.text or "").strip()
                break
        outcomes.append(TestOutcome(case.get("name", "?"), status, message))
    return outcomes


def stated(check: str) -> Tolerance | None:
    """The `CUDA_VS_CPU` entry a measurement's check name refers to ("w2v on cuda vs cpu" -> "w2v")."""
    key = check.split()[0]
    if check.startswith("hsp upsample"):
        key = "speechsr"
    return CUDA_VS_CPU.get(key)


def _measured(value: float, unit: str) -> str:
    return f"{value:.3g} int16 LSB" if unit == "int16 LSB" else f"{value:.3g} abs"


def _one_line(text: str, limit: int = 140) -> str:
    line = " ".join(text.split()).replace("|", "/")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def rows_for(tests: list[TestOutcome] | None, measurements: list[dict[str, Any]] | None,
             bench: dict[str, Any] | None) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    if tests is None:
        rows.append(("test", "(all)", "missing", "", "no JUnit report: pytest did not finish (see gpu-tests.log)"))
    for outcome in tests or []:
        rows.append(("test", outcome.name, outcome.status, "", _one_line(outcome.message)))
    for m in measurements or []:
        tolerance = stated(m["check"])
        batch = f", batch {m['batch']}" if m.get("batch") else ""
        if tolerance is None:
            rows.append(("diff", m["check"] + batch, "UNKNOWN BOUND", _measured(m["measured"], m["unit"]), "no entry in pipeline.testing.tolerances"))
            continue
        within = m["measured"] <= tolerance.max_abs + (1 / 32768 if m["check"].startswith("hsp upsample") else 0.0)
        note = tolerance.describe()
        if m.get("max_abs") != tolerance.max_abs or m.get("unit") != tolerance.unit:
            note += f" (MISMATCH: the test recorded {m.get('max_abs')} {m.get('unit')})"
        rows.append(("diff", m["check"] + batch, "within" if within else "OVER", _measured(m["measured"], tolerance.unit), note))
    if bench is None:
        rows.append(("bench", "(all)", "missing", "", "no benchmark results (see bench.log)"))
    for record in (bench or {}).get("results", []):
        if record["status"] != "ran":
            rows.append(("bench", record["name"], record["status"], "", _one_line(record.get("reason", ""))))
            continue
        peak = f", peak {record['peak_gpu_mib'] / 1024:.1f} GiB" if record.get("peak_gpu_mib") else ""
        measured = f"{record['hours_per_gpu_hour']:.1f} h audio / GPU-h (RTF {record['rtf']:.4f})"
        notes = f"{record.get('weights', '')}; {record.get('batch', '')}; {record['audio_seconds']:.0f} s in {record['wall_seconds']:.1f} s{peak}"
        if record.get("note"):
            notes += f"; {record['note']}"
        rows.append(("bench", record["name"], "ran", measured, _one_line(notes, 240)))
    return rows


def format_table(rows: list[tuple[str, ...]], environment: dict[str, Any] | None = None) -> str:
    """A Markdown table (with a line naming the device above it)."""
    env = environment or {}
    title = ", ".join(f"{k} {v}" for k, v in env.items() if k in ("gpu", "device", "torch", "cuda", "python"))
    tf32 = ""
    if "cudnn_allow_tf32" in env:
        tf32 = f" Benchmarks ran with torch's TF32 defaults (cuDNN {env['cudnn_allow_tf32']}, matmul {env['matmul_allow_tf32']}); the gpu tests with TF32 off."
    lines = [f"device check: {title or 'unknown device'}.{tf32}", "", "| " + " | ".join(HEADER) + " |",
             "|" + "|".join(" --- " for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _load(path: Path | None, reader):
    if path is None or not path.is_file():
        return None
    return reader(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junit", type=Path)
    parser.add_argument("--measurements", type=Path)
    parser.add_argument("--bench", type=Path)
    args = parser.parse_args(argv)
    tests = _load(args.junit, read_junit)
    measurements = _load(args.measurements, json.loads)
    bench = _load(args.bench, json.loads)
    print(format_table(rows_for(tests, measurements, bench), (bench or {}).get("environment")))
    failed = any(t.status in ("failed", "error") for t in tests or []) or tests is None
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
