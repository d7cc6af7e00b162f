"""GPU throughput of the model stages, in hours of audio per GPU-hour (bench/device_check.sh runs it).

Four benchmarks, each a JSON record in `--out` (bench/device_table.py prints them):

- ``speechsr48k_stage``: `upsample`'s SpeechSR stage with the RELEASED 48 kHz weights (the kit's),
  run directly (no Ray) at its GPU default (10 s of output audio per model call), 30 s clips.
- ``speechsr48k_hsp_upsample``: the same through ``hsp upsample --device cuda`` (a real local Ray;
  wall time includes Ray's start). Skipped where ``import ray`` fails.
- ``w2v_extract``: extract's w2v stage, MMS-300m architecture with RANDOM weights (the official
  weights come from the Hub, which the device cannot reach): 7 layers, float16 storage,
  120 s of audio per forward, 10 s clips.
- ``vc_synthesis``: the synthesis model stage, VC at 8 rows per call, release-size synthesizer with
  SYNTHETIC weights and the random MMS-300m above; 4 s sources, 3 s prompts, 16 kHz output.

Random weights cost the same time as trained ones (same shapes, same kernels); their outputs are
meaningless. Each benchmark runs one untimed warm-up call, then feeds rows for at most
`--budget` seconds; "hours per GPU-hour" = audio seconds / wall seconds on one GPU. TF32 is left
at torch's default (what a user gets); the table says which.

    python bench/bench_device.py --device cuda --out bench.json
    python bench/bench_device.py --device cpu --quick --out bench.json   # rehearsal, meaningless numbers
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.engine.item import Item  # noqa: E402
from pipeline.engine.stage import Resources  # noqa: E402

RATE = 16000


class Skipped(Exception):
    """A benchmark that cannot run here (the reason goes into the table)."""


def kit_dir() -> Path:
    return Path(os.environ.get("HSP_REFERENCE_DIR") or REPO.parent / "shared" / "reference")


def reference_speech(seconds: float) -> Any:
    """`seconds` of real 16 kHz speech: the kit's four reference clips, repeated."""
    import numpy as np
    import soundfile as sf

    clips = [sf.read(kit_dir() / "audio" / f"reference_{i}.wav", dtype="float32")[0] for i in range(1, 5)]
    joined = np.concatenate(clips)
    reps = int(np.ceil(seconds * RATE / joined.size))
    return np.tile(joined, reps)[: int(seconds * RATE)].copy()


def resources(device: str) -> Resources:
    return Resources(num_cpus=1.0, num_gpus=1.0 if device == "cuda" else 0.0)


def timed_rows(stage, make_row: Callable[[int], Item], rows_per_call: int, budget: float, device: str,
               output_seconds: Callable[[Item], float]) -> dict[str, Any]:
    """Warm up once, then run calls of `rows_per_call` rows until `budget` seconds are spent."""
    import torch

    warm = [make_row(10_000 + i) for i in range(rows_per_call)]
    stage(warm)
    failed = [item.error for item in warm if item.failed]
    if failed:
        raise RuntimeError(f"warm-up rows failed: {failed[0]}")
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    audio = 0.0
    rows = 0
    started = time.perf_counter()
    while time.perf_counter() - started < budget:
        items = [make_row(rows + i) for i in range(rows_per_call)]
        stage(items)
        failed = [item.error for item in items if item.failed]
        if failed:
            raise RuntimeError(f"rows failed: {failed[0]}")
        audio += sum(output_seconds(item) for item in items)
        rows += len(items)
    if device == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / (1 << 20) if device == "cuda" else None
    return {"rows": rows, "audio_seconds": audio, "wall_seconds": wall, "hours_per_gpu_hour": audio / wall,
            "rtf": wall / audio, "peak_gpu_mib": peak}


# -- the benchmarks ---------------------------------------------------------------------------------
def speechsr48k_stage(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.stages.speechsr import SpeechSRStage

    stage = SpeechSRStage("48k", checkpoint=str(kit_dir() / "weights/speechsr48k/G_100000.pth"), resources=resources(args.device))
    stage.setup()
    clip = reference_speech(args.clip_seconds)

    def row(i: int) -> Item:
        return Item(f"sr{i}", i, {}, data={"audio": clip, "sample_rate": RATE})

    per_call = 2 if args.quick else stage.batch_size
    result = timed_rows(stage, row, per_call, args.budget, args.device, lambda item: len(item.data["audio"]) / 48000)
    return {**result, "weights": "released SpeechSR-48k",
            "batch": f"{per_call} clips x {args.clip_seconds:g} s per call, {stage.windows_per_call} windows of {stage.window} per model call"}


def speechsr48k_hsp_upsample(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise Skipped(f"needs Ray ({exc}); Ray's wheel (79 MB) is more than a device call can carry") from exc
    import pyarrow as pa
    import pyarrow.parquet as pq
    import soundfile as sf

    work = Path(tempfile.mkdtemp(prefix="hsp-upsample-bench-"))
    clip = reference_speech(args.clip_seconds)
    count = max(1, int(args.hsp_minutes * 60 / args.clip_seconds))
    paths = []
    for i in range(count):
        path = work / f"clip{i:04d}.wav"
        sf.write(path, clip, RATE)
        paths.append(str(path))
    pq.write_table(pa.table({"id": [f"c{i}" for i in range(count)], "audio": paths}), work / "m.parquet")
    command = [sys.executable, "-m", "pipeline.cli", "upsample", str(work / "m.parquet"), "-o", str(work / "out"),
               "--checkpoint", str(kit_dir() / "weights/speechsr48k/G_100000.pth"), "--device", args.device, "--no-progress"]
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.budget * 4 + 120)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"hsp upsample exited {done.returncode}: {done.stderr[-800:]}")
    summary = json.loads((work / "out" / "summary.json").read_text())
    audio = summary["audio_hours_in"] * 3600.0
    return {"rows": summary["samples_out"], "audio_seconds": audio, "wall_seconds": wall, "hours_per_gpu_hour": audio / wall,
            "rtf": wall / audio, "peak_gpu_mib": None, "weights": "released SpeechSR-48k",
            "batch": "hsp upsample defaults", "job_wall_seconds": summary.get("wall_seconds"), "complete": summary["complete"],
            "note": "wall time of the whole command: Ray start, decode, model, FLAC, shards"}


def _random_mms_300m(device: str):
    import torch
    from transformers import Wav2Vec2Model

    from hierspeech.testing.w2v import mms_300m_config
    from hierspeech.w2v import Wav2Vec2Features

    torch.manual_seed(0)
    config = mms_300m_config()
    config.num_hidden_layers = 7  # hidden_states[7]: the layers extract and VC run
    return Wav2Vec2Features(Wav2Vec2Model(config), layer=7).to(device)


def w2v_extract(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.stages.model_features import ModelFeaturesStage, W2vOptions

    options = W2vOptions(model="random MMS-300m", layer=7, dtype="float16", batch_seconds=120.0)  # the item cap: the stage default
    stage = ModelFeaturesStage(w2v=options, resources=resources(args.device))
    stage._w2v_model = _random_mms_300m(args.device)  # what setup() loads from the Hub, with random weights
    stage._w2v_meta = {"model": options.model}
    clip = reference_speech(2.0 if args.quick else 10.0)

    def row(i: int) -> Item:
        return Item(f"w{i}", i, {}, data={"audio": clip})

    per_call = 2 if args.quick else stage.batch_size
    result = timed_rows(stage, row, per_call, args.budget, args.device, lambda item: len(clip) / RATE)
    return {**result, "weights": "random (MMS-300m architecture, layers 1-7)",
            "batch": f"{per_call} clips x {len(clip) / RATE:g} s per call, <= {options.batch_seconds:g} s per forward"}


def vc_synthesis(args: argparse.Namespace) -> dict[str, Any]:
    from hierspeech.mel import MelConfig, MelSpectrogram
    from hierspeech.synthesizer import Synthesizer, SynthesizerConfig
    from hierspeech.testing.synthetic_weights import load_synthetic_weights
    from pipeline.stages.synthesis_model import SynthesisModelStage
    from pipeline.stages.synthesis_params import ModelPaths
    from pipeline.testing.stages import vc_item

    stage = SynthesisModelStage(ModelPaths("synthetic"), modes=("vc",), max_batch_items=8, resources=resources(args.device))
    # what setup() loads from the checkpoints: release-size models, synthetic / random weights
    stage.synth = load_synthetic_weights(Synthesizer(SynthesizerConfig())).fuse_weight_norm().to(args.device)
    stage.w2v = _random_mms_300m(args.device)
    stage.ttv = stage.denoiser = None
    stage.speechsr = {}
    stage.mel = MelSpectrogram(MelConfig()).to(args.device)
    stage.provenance = {"synthesizer": "synthetic weights"}

    source, prompt, per_call = (1.0, 1.0, 2) if args.quick else (4.0, 3.0, 8)

    def row(i: int) -> Item:
        return vc_item(i, source, prompt_seconds=prompt)

    result = timed_rows(stage, row, per_call, args.budget, args.device, lambda item: len(item.data["raw"]) / RATE)
    return {**result, "weights": "synthetic (release-size synthesizer) + random MMS-300m",
            "batch": f"{per_call} rows per call, {source:g} s sources, {prompt:g} s prompts"}


BENCHMARKS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "speechsr48k_stage": speechsr48k_stage,
    "speechsr48k_hsp_upsample": speechsr48k_hsp_upsample,
    "w2v_extract": w2v_extract,
    "vc_synthesis": vc_synthesis,
}


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every benchmark in `args.only` (default: all); a failure or skip is a record, not an exit."""
    results = []
    for name in args.only or list(BENCHMARKS):
        started = time.perf_counter()
        try:
            record = {"name": name, "status": "ran", **BENCHMARKS[name](args)}
        except Skipped as exc:
            record = {"name": name, "status": "skipped", "reason": str(exc)}
        except Exception as exc:  # report it in the table and go on with the others
            traceback.print_exc()
            record = {"name": name, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]}
        record["seconds_total"] = time.perf_counter() - started
        print(json.dumps(record), file=sys.stderr, flush=True)
        results.append(record)
    return results


def environment(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"device": device, "torch": torch.__version__, "python": sys.version.split()[0]}
    if device == "cuda":
        info.update({"gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
                     "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32, "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32})
    info["load_average"] = os.getloadavg()
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    parser.add_argument("--budget", type=float, default=30.0, help="timed seconds per benchmark (after the warm-up)")
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="SpeechSR clip length")
    parser.add_argument("--hsp-minutes", type=float, default=10.0, help="audio through hsp upsample")
    parser.add_argument("--only", nargs="*", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument("--quick", action="store_true", help="a rehearsal: 1 s budgets, short clips, 2 rows per call")
    args = parser.parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda, but torch.cuda.is_available() is False")
    if args.quick:
        args.budget, args.clip_seconds, args.hsp_minutes = 1.0, 3.0, 0.1
    results = run_all(args)
    args.out.write_text(json.dumps({"environment": environment(args.device), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
