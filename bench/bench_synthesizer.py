"""Synthesizer voice-conversion speed on CPU with the kit's synthetic weights at the released config.

Rows: the official timing setup of timings.md (voice_conversion_noise_control, w2v [1, 1024, 250],
f0 [1, 1, 1000], trg_mel [2, 80, 150], noise_scale 0.333 -> 80000 samples) with and without cached
weight norm; then four items as one batch (equal lengths, and ragged lengths 250/200/150/100) versus
the same items one at a time. Median of the timed calls after one warm-up; RTF = compute seconds /
seconds of audio produced. Peak RSS is the process maximum (includes importing torch).

Usage: python bench/bench_synthesizer.py [--reference-dir ../shared/reference (or $HSP_REFERENCE_DIR)] [--threads 2] [--runs 3]
Numbers on a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hierspeech.synthesizer import Synthesizer, SynthesizerConfig
from hierspeech.testing.synthetic_weights import load_synthetic_weights

SAMPLE_RATE = 16000
HOP = 320
OFFICIAL = "official (timings.md, 2 threads, unshared): 1.817 s median, RTF 0.363, peak RSS 1717 MiB"


def _median_time(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _inputs(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random w2v/F0 for items of the given frame counts, and a [2B, 80, 150] target batch."""
    g = torch.Generator().manual_seed(seed)
    batch, t_max = len(lengths), max(lengths)
    src = torch.randn(batch, 1024, t_max, generator=g)
    f0 = torch.rand(batch, 1, 4 * t_max, generator=g) * 5
    trg_mel = torch.randn(2 * batch, 80, 150, generator=g)
    return src, torch.tensor(lengths), trg_mel, torch.full((2 * batch,), 150), f0


def _convert(model: Synthesizer, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return model.voice_conversion_noise_control(
        *inputs, noise_scale=0.333, denoise_ratio=0.0, generator=torch.Generator().manual_seed(1234)
    )


def _one_by_one(model: Synthesizer, lengths: list[int]) -> None:
    src, src_len, trg_mel, trg_len, f0 = _inputs(lengths)
    batch = len(lengths)
    for i, n in enumerate(lengths):
        pick = [i, i + batch]
        _convert(
            model,
            (
                src[i : i + 1, :, :n],
                src_len[i : i + 1],
                trg_mel[pick],
                trg_len[pick],
                f0[i : i + 1, :, : 4 * n],
            ),
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--reference-dir",
        type=Path,
        default=os.environ.get("HSP_REFERENCE_DIR")
        or Path(__file__).resolve().parents[2] / "shared" / "reference",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = SynthesizerConfig.from_json(args.reference_dir / "configs" / "hierspeechpp_v2.config.json")
    model = load_synthetic_weights(Synthesizer.from_config(config))
    print(
        f"Synthesizer VC, CPU, torch {torch.__version__}, {args.threads} thread(s), median of {args.runs} after warm-up"
    )
    print("(shared machine: numbers are indicative)\n")
    print("| case | audio s | compute s | RTF | audio s per s |")
    print("|---|---|---|---|---|", flush=True)

    def row(label: str, fn: Callable[[], object], audio_s: float) -> None:
        seconds = _median_time(fn, args.runs)
        print(
            f"| {label} | {audio_s:.2f} | {seconds:.3f} | {seconds / audio_s:.3f} | {audio_s / seconds:.2f} |",
            flush=True,
        )

    official = _inputs([250])
    with torch.inference_mode():
        row("batch 1, official setup", lambda: _convert(model, official), 5.0)
        model.fuse_weight_norm()
        row("batch 1, fused weight norm", lambda: _convert(model, official), 5.0)
        for name, lengths in (("equal 4x250", [250] * 4), ("ragged 250/200/150/100", [250, 200, 150, 100])):
            audio_s = sum(lengths) * HOP / SAMPLE_RATE
            batched = _inputs(lengths)
            row(f"{name}, one batch (fused)", lambda b=batched: _convert(model, b), audio_s)
            row(f"{name}, one at a time (fused)", lambda n=lengths: _one_by_one(model, n), audio_s)
    print(f"\npeak RSS: {_peak_rss_mib():.0f} MiB\n{OFFICIAL}")


if __name__ == "__main__":
    main()
