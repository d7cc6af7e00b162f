"""Samples per second and peak RSS of every export, at 1,000 and 10,000 short samples.

Builds (once, through the real sink, no Ray) outputs of 1,000 and 10,000 synthesis samples of
~0.5 s at 16 kHz, then runs each export in a fresh subprocess, so each peak RSS is that export's
alone. RSS after imports is printed beside the peak: the difference is what the export itself
holds, and it should not grow from 1,000 to 10,000 samples (the exports stream).

    python bench/bench_export.py [--samples 1000 10000] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FORMATS = {
    "shar": ("pipeline.export.shar", "export_shar", "SharOptions", {}),
    "lhotse": ("pipeline.export.lhotse_manifest", "export_lhotse_manifest", "LhotseManifestOptions", {}),
    "nemo": ("pipeline.export.nemo", "export_nemo", "NemoOptions", {}),
    "nemo_tarred": ("pipeline.export.nemo", "export_nemo", "NemoOptions", {"tarred": True, "num_shards": 8}),
    "hf": ("pipeline.export.huggingface", "export_huggingface", "HuggingFaceOptions", {}),
}


def _status_mb(field: str) -> float:
    """A memory line of /proc/self/status in MB (VmRSS now, VmHWM peak). Not getrusage's ru_maxrss:
    it keeps the forking parent's peak across exec, and the parent built the outputs."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(kind: str, output: str, to: str) -> None:
    """Run one export in this process and print its numbers as JSON."""
    import importlib

    module, function, options_class, options = FORMATS[kind]
    run = getattr(importlib.import_module(module), function)
    opts = getattr(importlib.import_module("pipeline.export.options"), options_class)(**options)
    after_import = _status_mb("VmRSS")
    started = time.perf_counter()
    result = run(output, to, opts, progress=False)
    seconds = time.perf_counter() - started
    peak = _status_mb("VmHWM")
    size = sum(p.stat().st_size for p in Path(to).rglob("*") if p.is_file()) / 2**20
    print(json.dumps({"samples": result.samples, "seconds": seconds, "after_import_mb": after_import, "peak_mb": peak, "written_mb": size}))


def build(root: Path, samples: int) -> float:
    from pipeline.export.testing import synthetic_output

    started = time.perf_counter()
    synthetic_output(root, samples, rows_per_part=1000, seconds=0.5, fail_gate_every=0, errors=0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--child", nargs=3, metavar=("FORMAT", "OUTPUT", "TO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_export_"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min), {os.cpu_count()} CPUs")
    rows = []
    try:
        for n in args.samples:
            output = work / f"out_{n}"
            if not (output / "job.json").exists():
                print(f"building a {n}-sample output ... {build(output, n):.1f} s")
            for kind in args.formats:
                to = work / f"{kind}_{n}"
                shutil.rmtree(to, ignore_errors=True)
                shutil.rmtree(to.parent / f".{to.name}.export", ignore_errors=True)
                proc = subprocess.run([sys.executable, __file__, "--child", kind, str(output), str(to)], env=env, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    raise SystemExit(f"{kind} on {n} samples failed:\n{proc.stderr[-3000:]}")
                numbers = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append((kind, n, numbers))
                shutil.rmtree(to, ignore_errors=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    print()
    header = ("format", "samples", "seconds", "samples/s", "MB written", "RSS after import MB", "peak RSS MB", "export holds MB")
    widths = [max(12, len(header[0]))] + [len(h) for h in header[1:]]
    print("| " + " | ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))) + " |")
    print("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|")
    for kind, _n, r in sorted(rows, key=lambda row: (list(FORMATS).index(row[0]), row[1])):
        cells = [kind, str(r["samples"]), f"{r['seconds']:.2f}", f"{r['samples'] / r['seconds']:.0f}", f"{r['written_mb']:.1f}",
                 f"{r['after_import_mb']:.0f}", f"{r['peak_mb']:.0f}", f"{r['peak_mb'] - r['after_import_mb']:.0f}"]
        print("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |")

if __name__ == "__main__":
    main()
