"""CPU throughput of the feature front-ends on the kit audio (audio-seconds per second).

Stages: F0 (YAAPT, amfm backend), text tokens, log-mel, and w2v with a real-size RANDOM-weight
MMS-300m (24 layers, 1024 wide; built from config, nothing downloaded), run two ways:
  * upstream way: full 24-layer Wav2Vec2ForPreTraining, batch 1, output_hidden_states, [7];
  * ours, transformers backend: Wav2Vec2Features cut after layer 6, length-bucketed batches
    with attention masks;
  * ours, packed backend (hierspeech.w2v_packed, the CPU default): the same 7 layers in
    (frames, channels) layout, a batch's items packed row-wise, FFT positional convolution;
with the max abs difference of our features to the upstream way's on every frame.

    PYTHONPATH=. python bench/bench_frontends.py [--threads 1] [--repeats 3]

Numbers from a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from transformers import Wav2Vec2ForPreTraining

from hierspeech.f0 import extract_f0
from hierspeech.mel import MelSpectrogram
from hierspeech.testing.w2v import mms_300m_config
from hierspeech.text import frontend_versions, text_to_tokens
from hierspeech.w2v import Wav2Vec2Features, extract_w2v, prepare_audio
from hierspeech.w2v_packed import onednn_linear_available

REFERENCE = Path(
    os.environ.get("HSP_REFERENCE_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "reference")
)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median (CPU seconds, wall seconds) over `repeats` runs after one warm-up run.

    CPU time of this process is the robust figure on a shared machine (with 1 thread it is the
    work done); wall time includes waiting for cores taken by other jobs.
    """
    function()
    cpu, wall = [], []
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        function()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return statistics.median(cpu), statistics.median(wall)


def _row(stage: str, audio_seconds: float, timing: tuple[float, float], note: str = "") -> str:
    cpu, wall = timing
    return (
        f"| {stage} | {audio_seconds:.1f} | {cpu:.3f} | {wall:.3f} | {audio_seconds / cpu:.1f} | "
        f"{cpu / audio_seconds:.4f} | {_peak_rss_mb():.0f} | {note} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-dir", type=Path, default=REFERENCE)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--w2v-repeats", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    audio_dir = args.reference_dir / "audio"
    wavs = [sf.read(p, dtype="float32")[0] for p in sorted(audio_dir.glob("reference_*.wav"))]
    texts = [p.read_text() for p in sorted(audio_dir.glob("reference_*.txt"))]
    if len(wavs) != 4 or len(texts) != 4:
        raise SystemExit(f"kit audio not found in {audio_dir} (set HSP_REFERENCE_DIR or --reference-dir)")
    kit_seconds = sum(len(w) for w in wavs) / 16000
    # w2v set: the kit files and crops of them, so batches mix lengths as real corpora do.
    crops = [w[: int(16000 * s)] for w, s in zip(wavs, (2.3, 1.7, 2.8, 1.2), strict=True)]
    w2v_wavs = wavs + crops
    w2v_seconds = sum(len(w) for w in w2v_wavs) / 16000

    print(f"# front-end throughput, CPU, {args.threads} thread(s), torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print(f"# shared machine (2 cores, other jobs running): numbers are indicative. versions: {frontend_versions()}")
    print(f"# packed w2v backend linear layers: {'oneDNN' if onednn_linear_available() else 'torch (no oneDNN)'}")
    print("| stage | audio s | CPU s | wall s | audio-s per CPU-s | RTF (CPU) | peak RSS MB | note |")
    print("|---|---|---|---|---|---|---|---|")

    timing = _time(lambda: [extract_f0(w) for w in wavs], args.repeats)
    print(_row("f0 (YAAPT, amfm)", kit_seconds, timing, f"{len(wavs)} files"), flush=True)

    timing = _time(lambda: [text_to_tokens(t) for t in texts], args.repeats)
    print(_row("tokens (english_cleaners2)", kit_seconds, timing, f"{len(texts)} transcripts of the kit audio"), flush=True)

    mel = MelSpectrogram()
    with torch.inference_mode():
        timing = _time(lambda: [mel(torch.from_numpy(w)[None]) for w in wavs], args.repeats)
        print(_row("mel (batch 1)", kit_seconds, timing), flush=True)
        batch = torch.from_numpy(np.stack(wavs))
        timing = _time(lambda: mel(batch), args.repeats)
        print(_row("mel (batch 4)", kit_seconds, timing), flush=True)

    torch.manual_seed(0)
    full = Wav2Vec2ForPreTraining(mms_300m_config()).eval()
    ours = Wav2Vec2Features(copy.deepcopy(full.wav2vec2))

    def upstream_way() -> list[torch.Tensor]:
        outputs = []
        with torch.no_grad():
            for w in w2v_wavs:
                hidden = full(prepare_audio(w)[None], output_hidden_states=True).hidden_states[7]
                outputs.append(hidden[0].transpose(0, 1))
        return outputs

    reference = upstream_way()
    timing_full = _time(upstream_way, args.w2v_repeats)
    print(_row("w2v upstream way (24 layers, batch 1)", w2v_seconds, timing_full, f"{len(w2v_wavs)} clips 1.2-3.0 s"), flush=True)

    def truncated(batch_size: int, backend: str) -> list[torch.Tensor]:
        return extract_w2v(ours, w2v_wavs, max_batch_size=batch_size, dtype=torch.float32, backend=backend)

    for backend, batch_size in itertools.product(("transformers", "packed"), (1, args.max_batch_size)):
        features = truncated(batch_size, backend)
        diff = max((a - b).abs().max().item() for a, b in zip(features, reference, strict=True))
        timing = _time(lambda b=batch_size, k=backend: truncated(b, k), args.w2v_repeats)
        print(
            _row(
                f"w2v ours, {backend} (7 layers, batches of <= {batch_size})",
                w2v_seconds,
                timing,
                f"{timing_full[0] / timing[0]:.2f}x upstream (CPU), {timing_full[1] / timing[1]:.2f}x (wall); "
                f"max abs diff {diff:.2e}",
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
