"""w2v features under bfloat16 autocast against float32: error and speed, side by side in one run.

    python bench/bench_w2v_precision.py [--seconds 4 --items 3 --threads 2]

Rows: the tiny test config and the MMS-300m architecture (7 layers kept, random weights: no hub
here, so the error is that of random weights of the real shapes, not of the released model). Each
row runs transformers' forward in float32 and under ``precision="bf16"`` (CPU autocast) on the same
items and prints the time of each, the max |difference| and the RMS error relative to the features'
RMS. fp32 stays the default; bf16 is for GPUs, where it is much faster than on this CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from transformers import Wav2Vec2Model

from hierspeech.testing.w2v import mms_300m_config, tiny_wav2vec2_config
from hierspeech.w2v import FEATURE_LAYER, Wav2Vec2Features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    wavs = [(rng.standard_normal(int(args.seconds * 16000) - 777 * i) * 0.1).astype(np.float32) for i in range(args.items)]
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.items} items of ~{args.seconds:g} s, CPU")
    print("| model | fp32 s | bf16 s | max abs diff | RMS error / RMS |")
    print("|---|---|---|---|---|")
    for name, config in (("tiny (hidden 32)", tiny_wav2vec2_config()), ("MMS-300m architecture", mms_300m_config())):
        torch.manual_seed(0)
        config.num_hidden_layers = FEATURE_LAYER
        features = Wav2Vec2Features(Wav2Vec2Model(config))
        timings, outputs = {}, {}
        for precision in ("fp32", "bf16", "fp32", "bf16"):  # alternated; the second run of each is timed
            start = time.perf_counter()
            outputs[precision] = features.extract(wavs, dtype=torch.float32, backend="transformers", precision=precision)
            timings[precision] = time.perf_counter() - start
        worst = max(float((a - b).abs().max()) for a, b in zip(outputs["fp32"], outputs["bf16"], strict=True))
        error = torch.cat([(a - b).flatten() for a, b in zip(outputs["fp32"], outputs["bf16"], strict=True)])
        scale = torch.cat([a.flatten() for a in outputs["fp32"]])
        relative = float(error.pow(2).mean().sqrt() / scale.pow(2).mean().sqrt())
        print(f"| {name} | {timings['fp32']:.2f} | {timings['bf16']:.2f} | {worst:.3g} | {relative:.2%} |")


if __name__ == "__main__":
    main()
