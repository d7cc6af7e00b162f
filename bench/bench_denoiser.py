"""Benchmark `hierspeech.denoiser.denoise`: RTF and peak RSS vs input length, chunked vs one piece.

Synthetic weights (golden/synthetic rule) at the released config: compute cost equals the real model's.
Each case runs in its own subprocess so peak RSS (resource.getrusage ru_maxrss) is not contaminated by
other cases; peak RSS includes the interpreter and torch import (measured alone: the `import` row).

    python bench/bench_denoiser.py                 # full table (5 s, 60 s, 600 s; 600 s only chunked)
    python bench/bench_denoiser.py --seconds 5 20  # other lengths
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

CASE = r"""
import json, resource, signal, sys, time
import torch
torch.set_num_threads({threads})
seconds, mode, repeats = {seconds}, {mode!r}, {repeats}
result = {{"seconds": seconds, "mode": mode, "model_calls": 0}}
started = time.perf_counter()

def report_partial(signum, frame):
    # Over the time limit: report how far it got and the peak RSS so far, then stop.
    result["partial_after_s"] = time.perf_counter() - started
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result), flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, report_partial)
if mode != "import":
    from hierspeech.denoiser import Denoiser, DenoiserConfig, denoise
    from hierspeech.testing.synthetic_weights import load_synthetic_weights
    model = load_synthetic_weights(Denoiser(DenoiserConfig()))
    def count_call(module, args):
        result["model_calls"] += 1
    model.register_forward_pre_hook(count_call)
    noisy = torch.randn(int(seconds * 16000), generator=torch.Generator().manual_seed(0)) * 0.1
    kwargs = {{"chunk_seconds": None}} if mode == "one piece" else {{}}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = denoise(noisy, model, **kwargs)
        times.append(time.perf_counter() - start)
    result["times"] = times
    torch.save(out, {output!r})
result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""


def run_case(seconds: float, mode: str, repeats: int, threads: int, timeout: float, output: Path) -> dict:
    code = CASE.format(seconds=seconds, mode=mode, repeats=repeats, threads=threads, output=str(output))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the case prints its partial result on SIGTERM
        out, err = proc.communicate()
    if proc.returncode != 0 or not out.strip():
        return {"seconds": seconds, "mode": mode, "error": err.strip().splitlines()[-1:]}
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[5.0, 60.0, 600.0])
    parser.add_argument("--max-one-piece", type=float, default=60.0, help="longest input also run in one piece")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="1 by default: on a loaded 2-core box, 2 are slower")
    parser.add_argument("--case-timeout", type=float, default=1800, help="seconds; a case over it reports partial")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_case(0, "import", 1, args.threads, args.case_timeout, Path(tmp) / "none.pt")]
        for seconds in args.seconds:
            chunked, whole = Path(tmp) / f"{seconds}.chunked.pt", Path(tmp) / f"{seconds}.whole.pt"
            rows.append(run_case(seconds, "chunked (default)", args.repeats, args.threads, args.case_timeout, chunked))
            if seconds <= args.max_one_piece:
                rows.append(run_case(seconds, "one piece", args.repeats, args.threads, args.case_timeout, whole))
                if chunked.is_file() and whole.is_file():
                    a, b = torch.load(chunked, weights_only=True), torch.load(whole, weights_only=True)
                    rows[-1]["diff"] = (f"max abs {(a - b).abs().max():.2e}, "
                                        f"rms ratio {((a - b).norm() / b.norm()):.2e}")

    print(f"MP-SENet denoise(), synthetic weights, released config, torch threads {args.threads}, CPU, "
          f"one timed run per case, no warm-up (first call included).")
    print("Shared machine: numbers are indicative. Official (timings.md): 5 s -> RTF 2.40, 3114 MiB.")
    print("| input s | mode | runs (s) | best s | RTF | audio s per s | peak RSS (MiB) | chunked vs one piece |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['seconds']:g} | {row['mode']} | failed: {row['error']} | | | | |")
        elif "partial_after_s" in row:
            print(f"| {row['seconds']:g} | {row['mode']} | stopped after {row['partial_after_s']:.0f} s, "
                  f"{row['model_calls']} model calls done | | | | {row['peak_rss_mib']:.0f} (so far) |")
        elif row["mode"] == "import":
            print(f"| - | import only | | | | | {row['peak_rss_mib']:.0f} |")
        else:
            best = min(row["times"])
            runs = ", ".join(f"{t:.2f}" for t in row["times"])
            print(f"| {row['seconds']:g} | {row['mode']} | {runs} | {best:.2f} | {best / row['seconds']:.3f} "
                  f"| {row['seconds'] / best:.2f} | {row['peak_rss_mib']:.0f} | {row.get('diff', '')} |")


if __name__ == "__main__":
    main()
