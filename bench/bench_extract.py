"""End-to-end throughput of `hsp extract` on the kit audio, on a real local Ray.

The manifest holds the kit's four 3 s clips (with transcripts) `--copies` times under distinct
ids. w2v is a RANDOM-weight model saved to a temporary folder and passed as `--w2v-model`:
`tiny` (hidden 32, for a quick look) or `mms` (MMS-300m's shape up to layer 7: the same work
per second of audio as the real model; nothing downloaded). `--denoise` adds MP-SENet with
random weights at the official size.

Prints one table: the whole job (wall incl. Ray start, audio-s per s, peak RSS of the driver
and of all Ray processes), then each stage run in-process without Ray on the same clips
(seconds per audio second, 1 thread), which says where a cluster's cores go.

    PYTHONPATH=. python bench/bench_extract.py [--model tiny|mms] [--copies 4] [--num-cpus 4]

Numbers from a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import resource
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import torch

REFERENCE = Path(os.environ.get("HSP_REFERENCE_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "reference"))


class TreeRss:
    """Peak summed RSS of this process and all its descendants (Ray's raylet, workers), sampled."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a worker may exit between listing and reading
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _models(root: Path, kind: str, denoise: bool) -> tuple[str, str | None]:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from hierspeech.testing.w2v import mms_300m_config, tiny_wav2vec2_config

    torch.manual_seed(0)
    config: Wav2Vec2Config = tiny_wav2vec2_config(num_hidden_layers=8) if kind == "tiny" else mms_300m_config()
    config.num_hidden_layers = 8  # layers 0..6 are used; 8 keeps the saved folder small
    Wav2Vec2Model(config).save_pretrained(root / "w2v")
    ckpt = None
    if denoise:
        from hierspeech.denoiser import Denoiser, DenoiserConfig

        config_d = DenoiserConfig()
        (root / "den").mkdir()
        torch.save({"generator": Denoiser.from_config(config_d).state_dict()}, root / "den" / "g_best")
        (root / "den" / "config.json").write_text(json.dumps(dataclasses.asdict(config_d)))
        ckpt = str(root / "den" / "g_best")
    return str(root / "w2v"), ckpt


def _per_stage(job_config, audio_dir: Path) -> dict[str, float]:
    """Seconds per stage for the kit clips, in-process, 1 thread, each stage warmed up once."""
    from pipeline.engine.item import Item
    from pipeline.extract import extract_job

    torch.set_num_threads(1)
    stages = extract_job(job_config).build_stages()
    for stage in stages:
        stage.resources.num_gpus = 0.0
        stage.setup()

    def items() -> list:
        return [
            Item(id=p.stem, row=i, fields={"id": p.stem, "audio": str(p), "text": p.with_suffix(".txt").read_text().strip()})
            for i, p in enumerate(sorted(audio_dir.glob("reference_*.wav")))
        ]

    totals: dict[str, float] = {}
    for repeat in range(2):  # the first pass warms up (espeak, model caches)
        batch = items()
        started = time.perf_counter()
        decode = stages[0]
        decode(batch)
        decode_s = time.perf_counter() - started
        for stage in stages[1:]:
            stage(batch)
        failed = [i.error for i in batch if i.failed]
        if failed:
            raise RuntimeError(f"stage run failed: {failed}")
        if repeat:
            totals["decode"] = decode_s
            for item in batch:
                for name, seconds in item.data["timings"].items():
                    totals[name] = totals.get(name, 0.0) + seconds
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-dir", type=Path, default=REFERENCE)
    parser.add_argument("--model", choices=["tiny", "mms"], default="tiny")
    parser.add_argument("--copies", type=int, default=4, help="Copies of the 4 kit clips in the manifest.")
    parser.add_argument("--num-cpus", type=int, default=4, help="Logical CPUs of the local Ray.")
    parser.add_argument("--cpu-actors", type=int, default=2)
    parser.add_argument("--denoise", action="store_true", help="Also the denoise feature (random full-size MP-SENet).")
    args = parser.parse_args()

    from pipeline.engine.job import RunOptions
    from pipeline.engine.runner import run_job
    from pipeline.extract import ExtractConfig, extract_job

    audio_dir = args.reference_dir / "audio"
    clips = sorted(audio_dir.glob("reference_*.wav"))
    if len(clips) != 4:
        raise SystemExit(f"kit audio not found in {audio_dir} (set HSP_REFERENCE_DIR or --reference-dir)")
    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
        root = Path(tmp)
        w2v_dir, den = _models(root, args.model, args.denoise)
        features = ("w2v", "f0", "tokens", "mel", "denoise") if args.denoise else ("w2v", "f0", "tokens", "mel")
        config = ExtractConfig(features=features, w2v_model=w2v_dir, denoiser_ckpt=den, cpu_actors=args.cpu_actors, gpus_per_actor=1.0)
        rows = [
            {"id": f"{p.stem}_{k}", "audio": str(p), "text": p.with_suffix(".txt").read_text().strip()}
            for k in range(args.copies)
            for p in clips
        ]
        pq.write_table(pa.Table.from_pylist(rows), root / "m.parquet")
        options = RunOptions(num_cpus=args.num_cpus, rows_per_shard=100, progress=False, command=["bench_extract"])
        with TreeRss() as rss:
            started = time.perf_counter()
            summary = run_job(extract_job(config), root / "m.parquet", root / "out", options)
            wall = time.perf_counter() - started
        audio_seconds = summary["audio_seconds_this_run"]
        stage_seconds = _per_stage(dataclasses.replace(config), audio_dir)

    kit_seconds = 12.0
    print(f"# hsp extract, {args.model} random w2v{' + MP-SENet' if args.denoise else ''}, CPU only, local Ray --num-cpus {args.num_cpus}, "
          f"--cpu-actors {args.cpu_actors}; torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("# shared machine (2 cores, other agents' jobs running): numbers are indicative.")
    print("| what | audio s | wall s | audio-s per s | peak RSS MB | note |")
    print("|---|---|---|---|---|---|")
    print(f"| job end to end | {audio_seconds:.0f} | {wall:.1f} | {audio_seconds / wall:.2f} | driver {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}, all Ray {rss.peak / 2**20:.0f} | "
          f"{summary['samples_out']} samples, {summary['errors']} errors, wall incl. Ray start |")
    for name in ("decode", "stored_audio", "tokens", "w2v", "denoise", "f0", "mel"):
        if name in stage_seconds:
            seconds = stage_seconds[name]
            print(f"| stage {name} (in-process, 1 thread) | {kit_seconds:.0f} | {seconds:.3f} | {kit_seconds / seconds:.1f} | | |")


if __name__ == "__main__":
    main()
