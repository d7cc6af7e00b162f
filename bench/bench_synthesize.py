"""Throughput of the synthesis job's stages with FULL-size models (the kit's synthetic weights), CPU.

Runs the job's own stages in-process (no Ray): inputs -> VC F0 (YAAPT) -> models -> output, on
voice-like test audio, for VC, TTS and VC + SpeechSR 48 kHz. The models are built from the release
configs (synthesizer, TTV, MP-SENet, SpeechSR-48k: synthetic weights; w2v: MMS-300m architecture cut
at layer 7, random weights) and handed to the model stage directly, skipping checkpoint files.

    /work/venv/bin/python bench/bench_synthesize.py --rows 2 --seconds 3 --threads 2

One untimed warm-up pass (a VC and a TTS row) precedes the timed cases.
Prints seconds of generated audio per wall second, RTF and peak RSS. Numbers are indicative
(shared machine).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.engine.item import Item
from pipeline.stages.synthesis_inputs import SynthesisInputStage
from pipeline.stages.synthesis_model import SynthesisModelStage
from pipeline.stages.synthesis_output import SynthesisOutputStage
from pipeline.stages.synthesis_params import GateLimits, InputLimits, ModelPaths, SynthesisDefaults
from pipeline.stages.vc_f0 import VcF0Stage

TEXT = "The birch canoe slid on the smooth planks, and glue held the sheet to the dark blue background."


def voice(seconds: float, f0: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.08 * np.sin(2 * np.pi * 3.0 * t))) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (0.2 * wave * (0.5 + 0.5 * np.sin(2 * np.pi * 2.0 * t) ** 2)).astype(np.float32)


def full_models(stage: SynthesisModelStage) -> None:
    """Put full-size synthetic-weight models on the stage (what setup() would load from files)."""
    from transformers import Wav2Vec2Model

    from hierspeech.denoiser import Denoiser, DenoiserConfig
    from hierspeech.mel import MelConfig, MelSpectrogram
    from hierspeech.speechsr import SpeechSR, SpeechSRConfig
    from hierspeech.synthesizer import Synthesizer, SynthesizerConfig
    from hierspeech.testing.synthetic_weights import load_synthetic_weights
    from hierspeech.testing.w2v import mms_300m_config
    from hierspeech.ttv import TTV, TTVConfig
    from hierspeech.w2v import Wav2Vec2Features

    stage.synth = load_synthetic_weights(Synthesizer(SynthesizerConfig())).fuse_weight_norm()
    stage.ttv = load_synthetic_weights(TTV(TTVConfig())).fuse_weight_norm()
    config = mms_300m_config()
    config.num_hidden_layers = 7
    stage.w2v = Wav2Vec2Features(Wav2Vec2Model(config), layer=7)
    stage.denoiser = load_synthetic_weights(Denoiser(DenoiserConfig()))
    stage.speechsr = {48000: load_synthetic_weights(SpeechSR(SpeechSRConfig())).fuse_weight_norm()}
    stage.mel = MelSpectrogram(MelConfig())
    stage.provenance = {"synthesizer": {"sha256": "synthetic"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tmp = Path(tempfile.mkdtemp())
    for name, f0 in (("src", 120.0), ("prompt", 200.0)):
        sf.write(tmp / f"{name}.wav", voice(args.seconds, f0), 16000)
    started = time.perf_counter()
    model_stage = SynthesisModelStage(ModelPaths("unused"), modes=("vc", "tts"))
    full_models(model_stage)
    print(f"built full-size models in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    inputs = SynthesisInputStage(default_mode="vc", defaults=SynthesisDefaults(), limits=InputLimits())
    f0 = VcF0Stage()
    output = SynthesisOutputStage(gates=GateLimits())

    cases = {
        "VC 16 kHz": lambda i: Item(f"vc{i}", i, {"audio": str(tmp / "src.wav"), "target_audio": str(tmp / "prompt.wav"), "seed": i}),
        "VC 16k + denoise 0.5": lambda i: Item(f"vd{i}", i, {"audio": str(tmp / "src.wav"), "target_audio": str(tmp / "prompt.wav"), "seed": i, "denoise_ratio": 0.5}),
        "TTS 16 kHz": lambda i: Item(f"tts{i}", i, {"mode": "tts", "text": TEXT, "prompt_audio": str(tmp / "prompt.wav"), "seed": i}),
        "VC -> SpeechSR 48 kHz": lambda i: Item(f"sr{i}", i, {"audio": str(tmp / "src.wav"), "target_audio": str(tmp / "prompt.wav"), "seed": i, "output_sr": 48000}),
    }
    warm = [cases["VC 16 kHz"](99), cases["TTS 16 kHz"](99)]  # first calls allocate: not timed
    for stage in (inputs, f0, model_stage, output):
        stage(warm)
    rows = []
    for name, make in cases.items():
        items = [make(i) for i in range(args.rows)]
        timings = {}
        for stage in (inputs, f0, model_stage, output):
            t0 = time.perf_counter()
            stage(items)
            timings[stage.name] = time.perf_counter() - t0
        failed = [i.error for i in items if i.failed]
        if failed:
            raise SystemExit(f"{name}: {failed}")
        audio = sum(i.meta["duration"] for i in items)
        wall = sum(timings.values())
        rows.append((name, audio, wall, timings))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nbench_synthesize: {args.rows} rows x {args.seconds:g} s, torch threads {args.threads}, CPU (shared machine: indicative)")
    print(f"{'case':<24}{'audio s':>9}{'wall s':>9}{'audio s/s':>11}{'RTF':>7}  per stage (s)")
    for name, audio, wall, timings in rows:
        stages = " ".join(f"{k}={v:.2f}" for k, v in timings.items())
        print(f"{name:<24}{audio:>9.2f}{wall:>9.2f}{audio / wall:>11.3f}{wall / audio:>7.2f}  {stages}")
    print(f"peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
