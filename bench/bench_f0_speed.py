"""F0 speed: amfm_decompy pYAAPT against hierspeech.f0.fast on the same audio, one core.

Each backend runs in its own subprocess (single-threaded BLAS/numba) so its peak RSS is its own. Audio: the 4
kit wavs plus espeak-ng clips (clean, white 20 dB, pink 10 dB), in the product's padding, extract_f0 params.
Throughput is audio seconds per second; we report wall time and CPU time (process_time), best of --repeats
passes, because the machine may be shared. "batch" runs yaapt_fast_batch over the whole list at once.

    /work/venv/bin/python bench/bench_f0_speed.py [--clips 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARAMS = {"frame_length": 20.0, "frame_space": 5.0, "nccf_thresh1": 0.25, "tda_frame_length": 25.0}
SINGLE_THREAD = {
    k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
}


def _worker(backend: str, audio_path: str, repeats: int) -> dict:
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    data = np.load(audio_path)
    signals = [data[k] for k in sorted(data.files)]
    audio_s = sum(s.shape[0] - 320 for s in signals) / 16000
    if backend == "amfm":
        from amfm_decompy import basic_tools, pYAAPT

        def one(y: np.ndarray) -> np.ndarray:
            return pYAAPT.yaapt(basic_tools.SignalObj(y.copy(), 16000), **PARAMS).samp_values

        batch = None
    else:
        from hierspeech.f0.fast import yaapt_fast, yaapt_fast_batch

        def one(y: np.ndarray) -> np.ndarray:
            return yaapt_fast(y, 16000, **PARAMS)

        def batch(ys: list[np.ndarray]) -> list[np.ndarray]:
            return yaapt_fast_batch(ys, 16000, **PARAMS)

    t1 = time.perf_counter()
    one(signals[0])  # first call: imports, numba cache load (or compile)
    first_call_s = time.perf_counter() - t1
    setup_s = t1 - t0

    def timed(fn) -> tuple[float, float]:
        best_wall = best_cpu = float("inf")
        for _ in range(repeats):
            w, c = time.perf_counter(), time.process_time()
            fn()
            best_wall = min(best_wall, time.perf_counter() - w)
            best_cpu = min(best_cpu, time.process_time() - c)
        return best_wall, best_cpu

    res = {"backend": backend, "audio_s": audio_s, "clips": len(signals), "setup_s": setup_s}
    res["first_call_s"] = first_call_s
    res["single_wall"], res["single_cpu"] = timed(lambda: [one(y) for y in signals])
    if batch is not None:
        res["batch_wall"], res["batch_cpu"] = timed(lambda: batch(signals))
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worker", choices=["amfm", "fast"], help=argparse.SUPPRESS)
    ap.add_argument("--audio", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.audio, args.repeats)))
        return

    from bench.f0_corpus import CONDITIONS, make_corpus, product_padding

    kit = Path(os.environ.get("HSP_REFERENCE_DIR") or ROOT.parent / "shared" / "reference") / "audio"
    signals = {}
    for i in range(1, 5):
        if (kit / f"reference_{i}.wav").is_file():
            wav, _ = sf.read(kit / f"reference_{i}.wav", dtype="float32")
            signals[f"kit{i}"] = product_padding(wav)
    conds = [c for c in CONDITIONS if c[0] in ("clean", "white20", "pink10")]
    for j, clip in enumerate(make_corpus(args.clips, conds)):
        signals[f"gen{j:03d}"] = product_padding(clip.wav)

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "audio.npz")
        np.savez(path, **signals)
        env = {**os.environ, **SINGLE_THREAD}
        results = {}
        for backend in ("amfm", "fast"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    backend,
                    "--audio",
                    path,
                    "--repeats",
                    str(args.repeats),
                ],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            results[backend] = json.loads(out.stdout.strip().splitlines()[-1])

    a, f = results["amfm"], results["fast"]
    audio_s = a["audio_s"]
    print(
        f"audio: {a['clips']} clips, {audio_s:.1f} s (kit wavs + espeak-ng clean/white20/pink10), extract_f0 params"
    )
    print(f"one thread per backend (OMP/OPENBLAS/NUMBA_NUM_THREADS=1), best of {args.repeats} passes")
    print(
        "NOTE: shared machine (other jobs running) - numbers are indicative; CPU-time columns are steadier.\n"
    )
    hdr = f"{'backend':22s} {'wall s':>8s} {'audio s/s':>10s} {'RTF':>8s} {'cpu s':>8s} {'audio s/cpu-s':>14s} {'speedup(cpu)':>13s}"
    print(hdr)
    print("-" * len(hdr))
    rows = [
        ("amfm_decompy pYAAPT", a["single_wall"], a["single_cpu"]),
        ("fast (one by one)", f["single_wall"], f["single_cpu"]),
    ]
    rows.append(("fast (yaapt_fast_batch)", f["batch_wall"], f["batch_cpu"]))
    for name, wall, cpu in rows:
        print(
            f"{name:22s} {wall:8.2f} {audio_s / wall:10.1f} {wall / audio_s:8.4f} {cpu:8.2f} "
            f"{audio_s / cpu:14.1f} {a['single_cpu'] / cpu:12.1f}x"
        )
    print(f"\nspeedup, wall time: {a['single_wall'] / f['single_wall']:.1f}x one by one, "
          f"{a['single_wall'] / f['batch_wall']:.1f}x batch")  # fmt: skip
    print(
        f"peak RSS: amfm {a['peak_rss_mb']:.0f} MB, fast {f['peak_rss_mb']:.0f} MB (whole process, incl. imports)"
    )
    print(f"start-up: amfm import+first call {a['setup_s'] + a['first_call_s']:.2f} s; fast {f['setup_s'] + f['first_call_s']:.2f} s "
          "(numba kernels load from the on-disk cache; the very first run compiles them, ~15-50 s)")  # fmt: skip


if __name__ == "__main__":
    main()
