"""w2v on one long clip: time and peak memory of the packed and transformers backends.

Real-size random-weight MMS-300m cut at layer 7 (built from config, nothing downloaded), one
clip of `--seconds` of noise. Each backend runs in its own process, so peak RSS is its own;
"+MiB" is the growth over the loaded, warmed-up model.

    PYTHONPATH=. python bench/bench_w2v_long.py [--seconds 60] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _measure(backend: str, seconds: float, threads: int) -> dict:
    import numpy as np
    import torch
    from transformers import Wav2Vec2Model

    from hierspeech.testing.w2v import mms_300m_config
    from hierspeech.w2v import Wav2Vec2Features, extract_w2v

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = mms_300m_config()
    config.num_hidden_layers = 7
    model = Wav2Vec2Features(Wav2Vec2Model(config))
    wav = (np.random.default_rng(0).standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)
    extract_w2v(model, [wav[:16000]], backend=backend)  # warm-up
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu, wall = time.process_time(), time.perf_counter()
    extract_w2v(model, [wav], backend=backend, dtype=torch.float32)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"cpu": cpu, "wall": wall, "peak": peak, "base": base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", choices=["packed", "transformers"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.child, args.seconds, args.threads)))
        return
    print(f"# w2v, one {args.seconds:.0f} s clip, random MMS-300m up to layer 7, {args.threads} thread(s)")
    print("| backend | CPU s | wall s | RTF (CPU) | audio-s per CPU-s | peak RSS MiB | + over loaded model MiB |")
    print("|---|---|---|---|---|---|---|")
    for backend in ("transformers", "packed"):
        command = [sys.executable, __file__, "--child", backend, "--seconds", str(args.seconds), "--threads", str(args.threads)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        print(
            f"| {backend} | {result['cpu']:.2f} | {result['wall']:.2f} | {result['cpu'] / args.seconds:.3f} | "
            f"{args.seconds / result['cpu']:.1f} | {result['peak']:.0f} | {result['peak'] - result['base']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
