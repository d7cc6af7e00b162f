"""F0 speed by clip length: amfm_decompy pYAAPT, the fast backend of a baseline commit, and this tree's.

Audio: espeak-ng speech (bench/f0_corpus.py: 8 voices, clean / white 20 dB / pink 10 dB, with pauses) and the
4 kit wavs, joined into one long signal and cut into clips of every length bucket (2-5 s, 5-10 s, 10-15 s,
each ~60 s of audio in total, kit wavs in the first) plus one long clip; product padding, extract_f0 params.

Each (backend, thread setting) runs in its own subprocess, several rounds interleaved so that a load spike
on a shared machine hits every backend alike; a cell is the best (least CPU time) pass over its bucket.
Throughput is audio seconds per CPU second of the whole process (process_time: threads included, so BLAS
threads that spin count against the backend that started them).

Thread settings: "default" is the environment as a user has it (numpy's OpenBLAS starts one thread per
core); "1 thread" sets OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS=1.

The baseline is the fast backend as committed at --baseline (default: main), copied out of git into a cache
folder (~/.cache/hsp-bench) so its numba kernels compile once.

    python bench/bench_f0_speed.py [--baseline main] [--rounds 3] [--threads default 1]
"""

from __future__ import annotations

import argparse
import json
import os
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
ONE_THREAD = {
    k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
}
BUCKETS = {"2-5 s": (2.0, 5.0), "5-10 s": (5.0, 10.0), "10-15 s": (10.0, 15.0)}
BUCKET_AUDIO_S = 60.0
LONG_S = 98.0
BASELINE_PACKAGE = "f0_baseline"


def _worker(backend: str, audio_path: str, baseline_dir: str | None) -> dict:
    """One pass per bucket (after one warm-up call per clip): CPU and wall seconds."""
    warnings.simplefilter("ignore")
    data = np.load(audio_path)
    buckets: dict[str, list[np.ndarray]] = {}
    for key in sorted(data.files):
        buckets.setdefault(key.split("|")[0], []).append(data[key])
    if backend == "amfm":
        from amfm_decompy import basic_tools, pYAAPT

        def one(y: np.ndarray) -> np.ndarray:
            return pYAAPT.yaapt(basic_tools.SignalObj(y.copy(), 16000), **PARAMS).samp_values
    else:
        if backend == "baseline":
            sys.path.insert(0, baseline_dir)
            from f0_baseline.fast import yaapt_fast
        else:
            from hierspeech.f0.fast import yaapt_fast

        def one(y: np.ndarray) -> np.ndarray:
            return yaapt_fast(y, 16000, **PARAMS)

    result = {}
    for name, signals in buckets.items():
        for y in signals[:1] if backend == "amfm" else signals:
            one(y)  # imports, numba cache, first-call caches
        wall, cpu = time.perf_counter(), time.process_time()
        for y in signals:
            one(y)
        result[name] = {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}
    return result


def _clips(seed: int = 0) -> dict[str, np.ndarray]:
    """Bucket-named clips ('2-5 s|003'), cut from one long signal of speech and pauses."""
    from bench.f0_corpus import CONDITIONS, have_espeak, make_corpus, product_padding

    kit = Path(os.environ.get("HSP_REFERENCE_DIR") or ROOT.parent / "shared" / "reference") / "audio"
    kit_wavs = [sf.read(p, dtype="float32")[0] for p in sorted(kit.glob("reference_*.wav"))]
    if not have_espeak():
        raise SystemExit("bench_f0_speed needs espeak-ng (scripts/setup.sh installs it)")
    conds = [c for c in CONDITIONS if c[0] in ("clean", "white20", "pink10")]
    speech = np.concatenate([c.wav for c in make_corpus(8, conds)])  # ~134 s
    rng = np.random.default_rng(seed)
    clips: dict[str, np.ndarray] = {}
    for name, (lo, hi) in BUCKETS.items():
        total = 0.0
        pieces = list(kit_wavs) if name == "2-5 s" else []
        while total + sum(len(p) for p in pieces) / 16000 < BUCKET_AUDIO_S:
            n = int(rng.uniform(lo, hi) * 16000)
            start = int(rng.integers(0, len(speech) - n))
            pieces.append(speech[start : start + n])
        for i, wav in enumerate(pieces):
            clips[f"{name}|{i:03d}"] = product_padding(wav)
        total = sum(len(p) for p in pieces) / 16000
    clips[f"long {LONG_S:g} s|000"] = product_padding(speech[: int(LONG_S * 16000)])
    return clips


def _baseline_dir(ref: str) -> Path:
    """The fast backend's two modules at git `ref`, as package f0_baseline in a cache folder."""
    sha = subprocess.run(
        ["git", "rev-parse", ref], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    folder = Path.home() / ".cache" / "hsp-bench" / f"f0-{sha[:12]}"
    package = folder / BASELINE_PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    for name in ("fast.py", "_yaapt_kernels.py"):
        text = subprocess.run(["git", "show", f"{sha}:hierspeech/f0/{name}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout  # fmt: skip
        text = text.replace(
            "from hierspeech.f0 import _yaapt_kernels", f"from {BASELINE_PACKAGE} import _yaapt_kernels"
        )
        if not (package / name).is_file() or (package / name).read_text() != text:
            (package / name).write_text(text)
    (package / "__init__.py").touch()
    return folder


def _run(backend: str, threads: str, audio: Path, baseline: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env = (
        {k: v for k, v in env.items() if k not in ONE_THREAD}
        if threads == "default"
        else {**env, **ONE_THREAD}
    )
    out = subprocess.run(
        [sys.executable, __file__, "--worker", backend, "--audio", str(audio), "--baseline-dir", str(baseline)],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="main", help="git ref of the fast backend to compare with")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each cell keeps its best")
    ap.add_argument("--threads", nargs="+", default=["default", "1"], choices=["default", "1"])
    ap.add_argument("--worker", choices=["amfm", "baseline", "fast"], help=argparse.SUPPRESS)
    ap.add_argument("--audio", help=argparse.SUPPRESS)
    ap.add_argument("--baseline-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.audio, args.baseline_dir)))
        return

    clips = _clips()
    baseline = _baseline_dir(args.baseline)
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    for key, y in clips.items():
        bucket = key.split("|")[0]
        seconds[bucket] = seconds.get(bucket, 0.0) + (y.shape[0] - 320) / 16000
        counts[bucket] = counts.get(bucket, 0) + 1
    backends = ("amfm", "baseline", "fast")
    best: dict[tuple[str, str, str], dict] = {}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "audio.npz"
        np.savez(audio, **clips)
        for _ in range(args.rounds):
            for threads in args.threads:
                for backend in backends:
                    for bucket, cell in _run(backend, threads, audio, baseline).items():
                        key = (threads, backend, bucket)
                        if key not in best or cell["cpu"] < best[key]["cpu"]:
                            best[key] = cell
            loads.append(os.getloadavg()[0])

    print(f"F0 speed, extract_f0 params; baseline = fast backend at {args.baseline}; best of {args.rounds} "
          f"interleaved rounds; 1-minute load average during the run {min(loads):.1f}-{max(loads):.1f} "
          f"on {os.cpu_count()} CPUs (a shared machine makes absolute numbers indicative, ratios steadier)")  # fmt: skip
    for threads in args.threads:
        print(f"\nthreads: {threads}; audio seconds per CPU second (ratio to amfm)")
        print("| clips | n | audio s | amfm | fast, baseline | fast, this tree | this tree / baseline |")
        print("|---|---|---|---|---|---|---|")
        for bucket in seconds:
            rate = {b: seconds[bucket] / best[(threads, b, bucket)]["cpu"] for b in backends}
            print(f"| {bucket} | {counts[bucket]} | {seconds[bucket]:.1f} | {rate['amfm']:.1f} "
                  f"| {rate['baseline']:.0f} ({rate['baseline'] / rate['amfm']:.1f}x) "
                  f"| {rate['fast']:.0f} ({rate['fast'] / rate['amfm']:.1f}x) "
                  f"| {rate['fast'] / rate['baseline']:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
