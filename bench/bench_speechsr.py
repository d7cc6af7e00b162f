"""Benchmark SpeechSR (16 kHz -> 24/48 kHz) on CPU: ours vs. the official implementation.

Prints one table: throughput (seconds of audio per wall-clock second), real-time factor, CPU seconds
and peak RSS, for our model at batch 1 (a plain ``model(x)`` call and the windowed runner) and at
several batch sizes of the windowed runner (`hierspeech.speechsr_batching.upsample_batch`), and, with
``--upstream PATH``, for the official ``speechsr24k/48k/speechsr.py`` of an upstream checkout on the
same audio. Every configuration runs in its own Python process, so peak RSS is per configuration.

The official module imports torchaudio, timm (through ``modules``) and einops at import time, for
its training discriminators only; the upstream worker injects empty stub modules for those three
names, which inference never touches. The weights are the released files (``--weights`` directory,
default ``$HSP_WEIGHTS_DIR`` or the conformance kit).

    python bench/bench_speechsr.py --upstream /work/upstream
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KIT = REPO.parent / "shared" / "reference"
CHECKPOINTS = {"24k": "speechsr24k/G_340000.pth", "48k": "speechsr48k/G_100000.pth"}


def _audio(kit: Path, n_items: int) -> list:
    import soundfile as sf
    import torch

    waves = [sf.read(kit / f"audio/reference_{i}.wav", dtype="float32")[0] for i in range(1, 5)]
    return [torch.from_numpy(waves[i % 4]) for i in range(n_items)]


def _time(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `repeats` calls after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def _worker(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    weights = Path(args.weights)
    items = _audio(Path(args.kit), args.batch)
    if args.impl == "upstream":
        for name in ("torchaudio", "modules", "einops"):  # training-only imports of the official file
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules["einops"].rearrange = None
        sys.path.insert(0, args.upstream)
        spec = importlib.util.spec_from_file_location(
            f"upstream_speechsr{args.variant}", Path(args.upstream) / f"speechsr{args.variant}/speechsr.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config = json.loads((weights / CHECKPOINTS[args.variant]).with_name("config.json").read_text())
        model = module.SynthesizerTrn(
            config["data"]["n_mel_channels"],
            config["train"]["segment_size"] // config["data"]["hop_length"],
            **config["model"],
        )
        state = torch.load(weights / CHECKPOINTS[args.variant], map_location="cpu", weights_only=True)["model"]
        model.load_state_dict(state)
        model.eval()
        batch = torch.stack(items)[:, None]

        def run() -> None:
            with torch.no_grad():
                model(batch)
    else:
        from hierspeech import SpeechSR
        from hierspeech.speechsr_batching import upsample_batch

        model = SpeechSR.from_pretrained(weights / CHECKPOINTS[args.variant]).fuse_weight_norm()
        if args.impl == "ours-forward":
            batch = torch.stack(items)[:, None]

            def run() -> None:
                with torch.inference_mode():
                    model(batch)
        else:

            def run() -> None:
                upsample_batch(model, items, window=args.window, batch_size=args.window_batch)

    wall, cpu = _time(run, args.repeats)
    audio_s = sum(len(x) for x in items) / 16000
    return {
        "impl": args.impl,
        "variant": args.variant,
        "batch": args.batch,
        "audio_s": audio_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _spawn(args: argparse.Namespace, impl: str, variant: str, batch: int) -> dict:
    cmd = [
        sys.executable, __file__, "--worker", "--impl", impl, "--variant", variant, "--batch", str(batch),
        "--threads", str(args.threads), "--repeats", str(args.repeats), "--weights", str(args.weights),
        "--kit", str(args.kit), "--window", str(args.window), "--window-batch", str(args.window_batch),
    ]
    if args.upstream:
        cmd += ["--upstream", args.upstream]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} {variant} batch {batch} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", help="path of an upstream HierSpeechpp checkout (adds official rows)")
    parser.add_argument("--variants", default="24k,48k")
    parser.add_argument("--batches", default="1,4,8", help="item counts for the windowed runner")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (2 = official timings)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=int, default=16384, help="window length in output samples")
    parser.add_argument("--window-batch", type=int, default=1, help="windows per model call")
    parser.add_argument("--weights", default=os.environ.get("HSP_WEIGHTS_DIR") or str(KIT / "weights"))
    parser.add_argument("--kit", default=os.environ.get("HSP_REFERENCE_DIR") or str(KIT))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="ours-windowed", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="48k", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args)))
        return

    rows = []
    for variant in args.variants.split(","):
        plan = [("ours-forward", 1)] + [("ours-windowed", int(b)) for b in args.batches.split(",")]
        if args.upstream:
            plan.append(("upstream", 1))
        for impl, batch in plan:
            rows.append(_spawn(args, impl, variant, batch))
            print(f"  done: {impl} {variant} batch {batch}", file=sys.stderr)

    print(f"\nSpeechSR CPU benchmark: torch threads {args.threads}, median of {args.repeats} runs after a warm-up,"
          f" kit audio (3 s clips), window {args.window} x {args.window_batch}.")
    print("Machine shared with other jobs: numbers are indicative; 'cpu s' (process CPU time) is the steadier one.")
    if args.upstream:
        print("upstream = official speechsr*/speechsr.py run in a separate interpreter with stub modules for"
              " torchaudio, modules (timm) and einops (imported by the official file, unused at inference).")
    print()
    print("| impl | variant | items | audio s | wall s | cpu s | audio s / s | RTF | x upstream (wall) "
          "| x upstream (cpu) | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        base = next((r for r in rows if r["impl"] == "upstream" and r["variant"] == row["variant"]), None)
        thr = row["audio_s"] / row["wall_s"]
        x_wall = f"{thr / (base['audio_s'] / base['wall_s']):.2f}" if base else "-"
        x_cpu = f"{(base['cpu_s'] / base['audio_s']) / (row['cpu_s'] / row['audio_s']):.2f}" if base else "-"
        print(f"| {row['impl']} | {row['variant']} | {row['batch']} | {row['audio_s']:.1f} | {row['wall_s']:.3f} "
              f"| {row['cpu_s']:.3f} | {thr:.2f} | {row['wall_s'] / row['audio_s']:.3f} | {x_wall} | {x_cpu} "
              f"| {row['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
