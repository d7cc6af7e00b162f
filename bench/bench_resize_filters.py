"""SpeechSR's interpolation in float32 vs the former float64 copy, and cached vs rebuilt alias-free filters.

Side by side in one run, on this machine's CPU (the float64 and per-call filter costs are larger on a
GPU, where float64 runs at a fraction of the float32 rate and every call launched the filter build):

    python bench/bench_resize_filters.py [--repeats 5] [--threads 1]

Rows: `apply_resize` on a batch of SpeechSR windows (8 x 32 channels x 16384 outputs), float64 (before)
and float32 (now), with the max |difference|; the anti-aliased activation's grouped-convolution path
(the one CUDA runs; float64 here so the CPU takes it too) with its filters rebuilt at every call
(before) and cached (now); and, with the released 48 kHz weights, `upsample_batch` on 10 s of speech
with each interpolation, against the kit's golden for the first 12345 samples.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import hierspeech.modules.resize as resize
import hierspeech.speechsr_batching as batching
from hierspeech import SpeechSR
from hierspeech.modules.alias_free import Activation1d
from hierspeech.modules.snake import SnakeBeta

KIT = Path(__file__).resolve().parents[2] / "shared" / "reference"


def apply_resize_float64(x, left, right, w_left, w_right):
    """The former arithmetic: an exact fused multiply-add through a float64 copy."""
    shape = (x.shape[0], x.shape[1], left.shape[-1])
    a = x.gather(-1, left[:, None, :].expand(shape))
    b = x.gather(-1, right[:, None, :].expand(shape))
    b.mul_(w_right[:, None, :].to(x.dtype))
    return a.double().mul_(w_left[:, None, :].double()).add_(b.double()).to(x.dtype)


def timed(function, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []

    gen = torch.Generator().manual_seed(0)
    n_in, n_out, batch = 10923, 16384, 8
    x = torch.randn(batch, 32, n_in, generator=gen)
    positions = [resize.resize_positions(n_in, n_out, 0, n_out) for _ in range(batch)]
    left, right, w_left, w_right = (torch.stack(p) for p in zip(*positions, strict=True))
    t64, y64 = timed(lambda: apply_resize_float64(x, left, right, w_left, w_right), args.repeats)
    t32, y32 = timed(lambda: resize.apply_resize(x, left, right, w_left, w_right), args.repeats)
    diff = float((y64 - y32).abs().max())
    rows.append(("apply_resize 8x32x16384, float64 copy (before)", t64, "", ""))
    rows.append(("apply_resize 8x32x16384, float32 (now)", t32, f"{t64 / t32:.2f}x", f"{diff:.1e}"))

    act = Activation1d(SnakeBeta(32, alpha_logscale=True)).double()
    h = torch.randn(4, 32, 4096, dtype=torch.float64, generator=gen)

    def rebuilt():
        for module in (act, act.upsample, act.downsample.lowpass):
            for slot in ("_phase_weight_cache", "_down_weight_cache", "_weight_cache", "_plan_cache"):
                module.__dict__.pop(slot, None)
        return act(h)

    with torch.no_grad():
        t_rebuilt, y_rebuilt = timed(rebuilt, args.repeats)
        act(h)
        t_cached, y_cached = timed(lambda: act(h), args.repeats)
    rows.append(("Activation1d conv path 4x32x4096, filters rebuilt per call (before)", t_rebuilt, "", ""))
    rows.append(("Activation1d conv path 4x32x4096, filters cached (now)", t_cached,
                 f"{t_rebuilt / t_cached:.2f}x", f"{float((y_rebuilt - y_cached).abs().max()):.1e}"))

    checkpoint = KIT / "weights" / "speechsr48k" / "G_100000.pth"
    if checkpoint.is_file():
        import soundfile as sf

        model = SpeechSR.from_pretrained(checkpoint).fuse_weight_norm()
        speech = np.concatenate([sf.read(KIT / f"audio/reference_{i}.wav", dtype="float32")[0] for i in (1, 2, 3, 4)])
        wave = torch.from_numpy(np.concatenate([speech, speech[:32000]]))[:160000]  # 10 s
        golden = np.load(KIT / "golden/speechsr/reference_1_first12345.sr48.npy")[0, 0]
        variants = {"float64": apply_resize_float64, "float32": resize.apply_resize}
        times: dict[str, list[float]] = {name: [] for name in variants}
        outputs, golden_diff = {}, {}
        for _ in range(max(1, args.repeats // 2)):  # alternated, so that a load change hits both
            for name, function in variants.items():
                batching.apply_resize = function
                start = time.perf_counter()
                outputs[name] = batching.upsample_batch(model, [wave])[0]
                times[name].append(time.perf_counter() - start)
                first = batching.upsample_batch(model, [wave[:12345]])[0].numpy()
                golden_diff[name] = float(np.abs(first - golden).max())
        results = {name: (statistics.median(times[name]), outputs[name], golden_diff[name]) for name in variants}
        batching.apply_resize = resize.apply_resize
        (t_before, out_before, g_before), (t_now, out_now, g_now) = results["float64"], results["float32"]
        rows.append((f"upsample_batch 48k, 10 s, float64 interpolation (before; golden diff {g_before:.1e})",
                     t_before, "", ""))
        rows.append((f"upsample_batch 48k, 10 s, float32 interpolation (now; golden diff {g_now:.1e})", t_now,
                     f"{t_before / t_now:.2f}x", f"{float((out_before - out_now).abs().max()):.1e}"))

    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats}")
    print("| case | seconds | speed-up | max abs diff vs before |")
    print("|---|---|---|---|")
    for name, seconds, ratio, diff in rows:
        print(f"| {name} | {seconds:.4f} | {ratio} | {diff} |")


if __name__ == "__main__":
    main()
