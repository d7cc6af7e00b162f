"""F0 parity: hierspeech.f0.fast.yaapt_fast against amfm_decompy's pYAAPT on real-like speech.

Corpus: the 4 kit wavs (also compared with the kit goldens) plus espeak-ng clips (bench/f0_corpus.py) clean
and with white/pink noise at 30/20/10/5 dB SNR, with pauses and non-speech segments, in the product's
padding, for both parameter sets the product uses (extract_f0; inference_vc with f0_max=1100).
Prints one agreement row per condition and overall, then the worst clips.

    /work/venv/bin/python bench/bench_f0_parity.py [--clips 8] [--kit PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.f0_corpus import make_corpus, product_padding
from hierspeech.f0.fast import yaapt_fast

BASE = {"frame_length": 20.0, "frame_space": 5.0, "nccf_thresh1": 0.25, "tda_frame_length": 25.0}
VARIANTS = {"extract_f0": BASE, "inference_vc": {**BASE, "f0_max": 1100.0}}
THRESH = {"voicing": 99.5, "within_1hz": 99.0, "median_rel": 0.1}  # percent


def amfm_f0(y: np.ndarray, params: dict) -> np.ndarray:
    from amfm_decompy import basic_tools, pYAAPT

    return pYAAPT.yaapt(basic_tools.SignalObj(y.copy(), 16000), **params).samp_values


def compare(ref: np.ndarray, ours: np.ndarray) -> dict:
    """Frame counts behind the agreement metrics."""
    assert ref.shape == ours.shape, (ref.shape, ours.shape)
    vr, vo = ref > 0, ours > 0
    both = vr & vo
    d = np.abs(ref[both] - ours[both])
    return {
        "frames": ref.size,
        "vuv_agree": int((vr == vo).sum()),
        "both": int(both.sum()),
        "within_1hz": int((d <= 1.0).sum()),
        "exact": int((ref == ours).sum()),
        "rel": d / ref[both],
        "max_dhz": float(d.max()) if d.size else 0.0,
    }


def row(name: str, stats: list[dict]) -> str:
    frames = sum(s["frames"] for s in stats)
    both = sum(s["both"] for s in stats)
    voicing = 100.0 * sum(s["vuv_agree"] for s in stats) / frames
    within = 100.0 * sum(s["within_1hz"] for s in stats) / max(both, 1)
    rel = np.concatenate([s["rel"] for s in stats]) if both else np.zeros(1)
    exact = 100.0 * sum(s["exact"] for s in stats) / frames
    ok = (
        voicing >= THRESH["voicing"]
        and within >= THRESH["within_1hz"]
        and 100 * np.median(rel) <= THRESH["median_rel"]
    )
    return (
        f"{name:28s} {len(stats):5d} {frames:8d} {voicing:9.3f} {within:10.3f} {100 * np.median(rel):11.5f} "
        f"{100 * rel.mean():9.5f} {max(s['max_dhz'] for s in stats):9.2f} {exact:8.3f}  {'PASS' if ok else 'FAIL'}"
    )


def main() -> None:
    warnings.simplefilter("ignore")  # pYAAPT's own RuntimeWarnings/UserWarnings on pauses
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8, help="espeak clips per condition")
    default_kit = (
        os.environ.get("HSP_REFERENCE_DIR") or Path(__file__).resolve().parents[2] / "shared" / "reference"
    )
    ap.add_argument("--kit", type=Path, default=Path(default_kit), help="reference kit (HSP_REFERENCE_DIR)")
    ap.add_argument("--worst", type=int, default=8)
    args = ap.parse_args()

    items: list[tuple[str, np.ndarray]] = []
    golden: dict[str, dict[str, np.ndarray]] = {}
    for i in range(1, 5):
        wav_path = args.kit / "audio" / f"reference_{i}.wav"
        if wav_path.is_file():
            wav, _ = sf.read(wav_path, dtype="float32")
            items.append((f"kit/reference_{i}", wav))
            golden[f"kit/reference_{i}"] = {
                v: np.load(args.kit / "golden" / "yaapt" / f"reference_{i}.{v}.f0.npy")[0] for v in VARIANTS
            }
    t0 = time.perf_counter()
    items += [(c.name, c.wav) for c in make_corpus(args.clips)]
    print(f"corpus: {len(items)} clips, {sum(len(w) for _, w in items) / 16000:.1f} s of audio "
          f"(built in {time.perf_counter() - t0:.1f} s)")  # fmt: skip

    results: dict[tuple[str, str], dict] = {}
    worst: list[tuple] = []
    golden_rows = []
    t_ref = t_fast = 0.0
    for name, wav in items:
        y = product_padding(wav)
        for vname, params in VARIANTS.items():
            t = time.perf_counter()
            ref = amfm_f0(y, params)
            t_ref += time.perf_counter() - t
            t = time.perf_counter()
            ours = yaapt_fast(y, 16000, **params)
            t_fast += time.perf_counter() - t
            st = compare(ref, ours)
            results[(name, vname)] = st
            bad = (st["frames"] - st["vuv_agree"]) + (st["both"] - st["within_1hz"])
            worst.append((bad, st["max_dhz"], name, vname, ref, ours))
            if name in golden:
                g = golden[name][vname]
                golden_rows.append((name, vname, float(np.abs(ours.astype(np.float32) - g).max()),
                                    int(((ours > 0) != (g > 0)).sum()), int((ours.astype(np.float32) != g).sum())))  # fmt: skip

    header = (f"{'condition':28s} {'clips':>5s} {'frames':>8s} {'voicing%':>9s} {'|dF0|<=1%':>10s} "
              f"{'med_rel%':>11s} {'mean_rel%':>9s} {'max_dHz':>9s} {'exact%':>8s}  verdict")  # fmt: skip
    print(f"\nthresholds: voicing >= {THRESH['voicing']}%, |dF0| <= 1 Hz on >= {THRESH['within_1hz']}% of frames voiced in both, "
          f"median relative error <= {THRESH['median_rel']}%")  # fmt: skip
    for vname in VARIANTS:
        print(f"\n== {vname} ==\n{header}")
        conds = sorted({n.split("/")[0] for n, _ in items}, key=lambda c: (c != "kit", c != "clean", c))
        for c in conds:
            print(row(c, [s for (n, v), s in results.items() if v == vname and n.split("/")[0] == c]))
        print(row("ALL", [s for (n, v), s in results.items() if v == vname]))
    print(f"\n== overall (both variants) ==\n{header}")
    print(row("ALL", list(results.values())))

    print("\nkit wavs against the goldens (float32 as saved):")
    for name, vname, mx, nv, ndiff in golden_rows:
        print(
            f"  {name:20s} {vname:13s} max|diff| {mx:8.4f} Hz  voicing mismatches {nv}  frames differing {ndiff}"
        )

    print(f"\nworst {args.worst} clips (voicing disagreements + frames off by > 1 Hz):")
    worst.sort(key=lambda w: (-w[0], -w[1]))
    for bad, mx, name, vname, ref, ours in worst[: args.worst]:
        idx = np.flatnonzero(ref != ours)
        show = ", ".join(f"#{k}: {ref[k]:.1f}->{ours[k]:.1f}" for k in idx[:6])
        print(f"  {name:34s} {vname:13s} bad={bad:3d} max_dHz={mx:7.2f} differing={idx.size:3d}  {show}")
    print(
        f"\ntime: amfm {t_ref:.1f} s, fast {t_fast:.1f} s (shared machine; see bench_f0_speed.py for speed)"
    )


if __name__ == "__main__":
    main()
