"""Chunked MP-SENet `denoise`: a baseline commit's chunked mode against this tree's streamed one, side by side.

Synthetic weights (golden/synthetic rule) at the released config: compute equals the real model's. Default
chunking (4 s windows, 1 s overlap). Every case runs in its own subprocess so its peak RSS
(resource.getrusage ru_maxrss: interpreter, torch and the model included; the `import` row is that floor)
is its own; the baseline runs the `hierspeech` package as committed at --baseline (copied out of git into
~/.cache/hsp-bench), this tree's runs the working tree. Each case first denoises 0.5 s (one piece) so
one-time kernel set-up is not timed, then times one call on seeded white noise at 0.1 RMS. The outputs of
the two are compared (max abs difference, and relative to the output's max).

    python bench/bench_denoiser.py [--seconds 5 60 600] [--baseline main] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

CASE = r"""
import json, os, resource, time
import torch
torch.set_num_threads({threads})
result = {{"load_before": os.getloadavg()[0]}}
if {seconds} > 0:
    from hierspeech.denoiser import Denoiser, DenoiserConfig, denoise
    from hierspeech.testing.synthetic_weights import load_synthetic_weights
    model = load_synthetic_weights(Denoiser(DenoiserConfig()))
    generator = torch.Generator().manual_seed(0)
    denoise(torch.randn(8000, generator=generator) * 0.1, model)  # warm-up, one piece
    noisy = torch.randn(int({seconds} * 16000), generator=torch.Generator().manual_seed(1)) * 0.1
    wall, cpu = time.perf_counter(), time.process_time()
    out = denoise(noisy, model)
    result["wall_s"], result["cpu_s"] = time.perf_counter() - wall, time.process_time() - cpu
    torch.save(out, {output!r})
result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
result["load_after"] = os.getloadavg()[0]
print(json.dumps(result))
"""


def baseline_tree(ref: str) -> Path:
    """The `hierspeech` package at git `ref`, extracted once into a cache folder (returned: its parent)."""
    sha = subprocess.run(["git", "rev-parse", ref], cwd=REPO, check=True, capture_output=True, text=True)
    folder = Path.home() / ".cache" / "hsp-bench" / f"hierspeech-{sha.stdout.strip()[:12]}"
    if not (folder / "hierspeech" / "denoiser.py").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha.stdout.strip(), "hierspeech"], cwd=REPO, check=True,
                                 capture_output=True)  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def run_case(seconds: float, tree: Path, threads: int, timeout: float, output: Path) -> dict:
    code = CASE.format(seconds=seconds, threads=threads, output=str(output))
    env = {"PYTHONPATH": str(tree), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())}
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"over the {timeout:.0f} s case limit"}
    if proc.returncode != 0 or not proc.stdout.strip():
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[5.0, 60.0, 600.0])
    parser.add_argument("--baseline", default="main", help="git ref whose chunked mode is the reference")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case (1: the issue's setting)")
    parser.add_argument("--case-timeout", type=float, default=7200.0, help="seconds per case")
    parser.add_argument("--baseline-max-seconds", type=float, default=float("inf"),
                        help="run the baseline only up to this input length (its long cases take ~3x real time)")
    args = parser.parse_args()

    trees = {"baseline chunked": baseline_tree(args.baseline), "streamed (this tree)": REPO}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        imports = run_case(0, REPO, args.threads, args.case_timeout, Path(tmp) / "none.pt")
        for seconds in args.seconds:
            outputs = {}
            for mode, tree in trees.items():
                if tree != REPO and seconds > args.baseline_max_seconds:
                    rows.append({"seconds": seconds, "mode": mode, "error": "not run (over --baseline-max-seconds)"})
                    continue
                outputs[mode] = Path(tmp) / f"{seconds}.{len(outputs)}.pt"
                rows.append({"seconds": seconds, "mode": mode,
                             **run_case(seconds, tree, args.threads, args.case_timeout, outputs[mode])})  # fmt: skip
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            if len(outputs) == 2 and all(path.is_file() for path in outputs.values()):
                old, new = (torch.load(path, weights_only=True) for path in outputs.values())
                diff = (new - old).abs().max().item()
                rows[-1]["diff"] = f"{diff:.2e} ({diff / old.abs().max().item():.1e} of max |out|)"

    print(f"MP-SENet denoise(), chunked (4 s windows, 1 s overlap), synthetic weights, released config, CPU, "
          f"torch threads {args.threads}; baseline = chunked mode at {args.baseline}; one timed call per case "
          f"after a 0.5 s warm-up; 1-minute load average before/after each case.")  # fmt: skip
    print(f"Import-only peak RSS (interpreter + torch): {imports.get('peak_rss_mib', float('nan')):.0f} MiB\n")
    print("| input | mode | wall s | RTF (wall) | CPU s | peak RSS MiB | load | max abs diff vs baseline | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, row in enumerate(rows):
        if "error" in row:
            print(f"| {row['seconds']:g} s | {row['mode']} | failed: {row['error']} | | | | | | |")
            continue
        speedup = ""
        base = rows[i - 1] if i % 2 else None
        if base is not None and "wall_s" in base:
            speedup = f"{base['wall_s'] / row['wall_s']:.2f}x wall, {base['cpu_s'] / row['cpu_s']:.2f}x CPU"
        print(f"| {row['seconds']:g} s | {row['mode']} | {row['wall_s']:.1f} | {row['wall_s'] / row['seconds']:.2f} "
              f"| {row['cpu_s']:.1f} | {row['peak_rss_mib']:.0f} | {row['load_before']:.1f}/{row['load_after']:.1f} "
              f"| {row.get('diff', '')} | {speedup} |")  # fmt: skip


if __name__ == "__main__":
    main()
