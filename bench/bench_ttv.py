"""TTV inference speed on CPU with the kit's synthetic weights at the released config.

Rows: the official timing setup (reference_1 sentence, 135 tokens with blanks, y_mel [2, 80, 150],
noise_scale 0.333, noise_scale_w 1, torch.manual_seed(1234)) with and without cached weight norm, then
the four example sentences (135/229/155/313 tokens) one at a time versus as one ragged batch.
Median of 3 timed calls after one warm-up; RTF = compute seconds / seconds of speech
(w2v frames * 320 / 16000). Peak RSS is the process maximum (includes importing torch).

Usage: python bench/bench_ttv.py [--reference-dir ../shared/reference (or $HSP_REFERENCE_DIR)] [--threads 2]
Numbers on a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hierspeech import TTV, TTVConfig
from hierspeech.testing.synthetic_weights import load_synthetic_weights

HOP_SECONDS = 320 / 16000
OFFICIAL = "official (timings.md): 0.293 s median, RTF 0.052, 284 frames, peak RSS 1757 MiB"


def _median_time(fn, runs: int = 3) -> tuple[float, object]:
    fn()  # warm-up
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_ref = (
        os.environ.get("HSP_REFERENCE_DIR") or Path(__file__).resolve().parents[2] / "shared" / "reference"
    )
    parser.add_argument("--reference-dir", type=Path, default=default_ref)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ref = args.reference_dir

    config = TTVConfig.from_json(
        ref / "configs" / "ttv_lt960.config.json", ref / "configs" / "hierspeechpp_v2.config.json"
    )
    model = load_synthetic_weights(TTV.from_config(config))
    texts = json.loads((ref / "golden" / "text" / "text_frontend.phonemizer-3.2.1.json").read_text())[
        "examples"
    ]
    ids = [texts[f"reference_{i}.txt"]["file_text_plain"]["ids_with_blanks"] for i in range(1, 5)]
    y_mel = torch.from_numpy(np.load(ref / "golden" / "synthetic" / "ttv.in.y_mel.npy"))  # [2, 80, 150]
    y_len = torch.tensor([150, 150])

    rows = []

    def official_call() -> torch.Tensor:
        torch.manual_seed(1234)
        tokens = torch.tensor([ids[0]])
        w2v, _ = model.infer_noise_control(
            tokens, torch.tensor([len(ids[0])]), y_mel, y_len, 0.333, 1.0, 1.0, 0.0
        )
        return w2v

    with torch.no_grad():
        seconds, w2v = _median_time(official_call)
        rows.append(("batch 1, reference_1 (135 tok), unfused WN", 1, w2v.size(-1), seconds))
        model.fuse_weight_norm()
        seconds, w2v = _median_time(official_call)
        rows.append(("batch 1, reference_1 (135 tok), fused WN", 1, w2v.size(-1), seconds))

        g = model.blended_style(y_mel, y_len, 1, 0.0)

        def one_by_one() -> int:
            frames = 0
            for b, seq in enumerate(ids):
                gen = torch.Generator().manual_seed(100 + b)
                out = model.infer(torch.tensor([seq]), torch.tensor([len(seq)]), g, 0.333, 1.0, generator=gen)
                frames += int(out.lengths[0])
            return frames

        def batched() -> int:
            longest = max(len(s) for s in ids)
            tokens = torch.tensor([s + [0] * (longest - len(s)) for s in ids])
            gens = [torch.Generator().manual_seed(100 + b) for b in range(len(ids))]
            out = model.infer(tokens, torch.tensor([len(s) for s in ids]), g.expand(len(ids), -1, -1), 0.333, 1.0,
                              generator=gens)  # fmt: skip
            return int(out.lengths.sum())

        seconds, frames = _median_time(one_by_one)
        rows.append(("4 sentences one at a time (fused WN)", 4, frames, seconds))
        seconds, frames = _median_time(batched)
        rows.append(("4 sentences as one ragged batch (fused WN)", 4, frames, seconds))

    print(f"TTV CPU benchmark, torch {torch.__version__}, {args.threads} threads, synthetic weights")
    print("(shared 2-core machine: numbers are indicative)")
    print()
    print("| setup | items | w2v frames | speech s | median s | RTF | speech s / s |")
    print("|---|---|---|---|---|---|---|")
    for name, items, frames, seconds in rows:
        speech = frames * HOP_SECONDS
        print(f"| {name} | {items} | {frames} | {speech:.2f} | {seconds:.3f} | {seconds / speech:.3f} | "
              f"{speech / seconds:.1f} |")  # fmt: skip
    print()
    print(f"peak RSS: {_peak_rss_mib():.0f} MiB")
    print(OFFICIAL)


if __name__ == "__main__":
    main()
