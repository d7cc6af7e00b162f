"""Speed of each scorer (pipeline/scoring) on real speech: audio seconds per CPU-second.

The kit's four LibriTTS clips (../shared/reference/audio) joined and repeated to ~60 s, scored
as a batch of `--clips` such clips after one warm-up call (first-call JIT and session set-up are
reported separately as load time). CPU seconds are the process's (all threads: ONNX Runtime's
and torch's pools count, spinning included), so the ratio is comparable across scorers; wall
seconds and torch's thread count are printed too. Speaker similarity embeds each sample and a
3 s reference (a voice prompt): only the sample's seconds are counted. WER runs a tiny random
CTC model unless `--asr-model` names a real one: without it the row measures the plumbing only.

    PYTHONPATH=$PWD python bench/bench_scorers.py --clips 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KIT = Path(os.environ.get("HSP_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))


def kit_minute() -> tuple[np.ndarray, np.ndarray, str]:
    """~60 s of 16 kHz speech (the four kit clips, repeated), a 3 s reference, and its text."""
    from pipeline.io.audio import decode_audio

    clips = [decode_audio(str(KIT / "audio" / f"reference_{i}.wav")).samples for i in range(1, 5)]
    texts = [(KIT / "audio" / f"reference_{i}.txt").read_text() for i in range(1, 5)]
    joined = np.concatenate(clips)
    repeats = int(np.ceil(60 * 16000 / joined.shape[0]))
    return np.tile(joined, repeats), clips[0], " ".join(texts * repeats)


def main() -> None:
    import torch

    from pipeline.io.audio import resample
    from pipeline.scoring import ScoreInput, ScoringConfig, build_scorers

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=3, help="~60 s clips per timed batch")
    parser.add_argument("--asr-model", default=None, help="hub id or folder of a real CTC/Whisper model for the WER row")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    minute, reference, text = kit_minute()
    seconds = minute.shape[0] / 16000
    asr_model, asr_note = args.asr_model, "real model"
    if asr_model is None:
        from pipeline.scoring.testing import save_tiny_ctc

        asr_model, asr_note = str(save_tiny_ctc(Path(tempfile.mkdtemp(prefix="bench_asr_")))), "tiny random CTC: plumbing only"
    scorers = build_scorers(ScoringConfig(metrics=("dnsmos", "speaker_sim", "vad", "bandwidth", "wer"), device="cpu", asr_model=asr_model))
    cases = [(scorer, 16000, minute, "") for scorer in scorers]
    bandwidth = next(s for s in scorers if s.name == "bandwidth")
    cases.insert(4, (bandwidth, 48000, resample(minute, 16000, 48000), "48 kHz input"))

    lines = [
        f"audio: {seconds:.1f} s per clip x {args.clips} clips; torch threads {torch.get_num_threads()}; os.cpu_count {os.cpu_count()}; load {os.getloadavg()[0]:.2f}",
        "",
        "| scorer | rate | load s (wall) | audio s | CPU s | audio s / CPU s | wall s | audio s / wall s | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    print("\n".join(lines), flush=True)
    for scorer, rate, wave, note in cases:
        started = time.perf_counter()
        scorer.load()
        scorer.score([ScoreInput(wave[: rate * 2], rate, reference=reference, text=text[:40])])  # warm-up
        load_wall = time.perf_counter() - started
        batch = [ScoreInput(wave, rate, reference=reference, text=text) for _ in range(args.clips)]
        cpu, wall = time.process_time(), time.perf_counter()
        scorer.score(batch)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        audio = seconds * args.clips
        note = note or (asr_note if scorer.name == "wer" else "")
        lines.append(f"| {scorer.name} | {rate} | {load_wall:.2f} | {audio:.0f} | {cpu:.2f} | {audio / cpu:.1f} | {wall:.2f} | {audio / wall:.1f} | {note} |")
        print(lines[-1], flush=True)
    lines.append(f"\nload average after: {os.getloadavg()[0]:.2f}")
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
