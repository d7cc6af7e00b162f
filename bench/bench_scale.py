"""Cost against work at corpus scale: the runner's per-row overhead and each job against its model alone.

Two tables, every configuration measured in this one run, so ratios hold on a shared machine:

1. **Runner** (`--rows 1000 10000 100000`): `hsp prepare` on N one-second clips (16 kHz mono
   16-bit WAV, 64 distinct crops of the kit's speech, repeated under distinct ids) against a plain
   loop doing the same decode + FLAC encode (`pipeline.io.audio`) with no pipeline: one process
   per core over its share of the rows (the "same cores"), and on one core. For `hsp prepare`:
   wall time of the whole command, the job's own wall (manifest read to summary, including Ray's
   start), its start-up (manifest checks, Ray start, planning: the fixed cost), rows per second
   over the job wall and over the work after start-up, and the driver's peak RSS (the driver
   process alone, `ru_maxrss`). `--baseline DIR` also runs an older source tree (e.g.
   `git archive <commit> | tar -x -C DIR`) on the same manifests, interleaved with the new one.
2. **Jobs vs models** (`--jobs upsample extract`): audio seconds per second of `hsp upsample`
   (48 kHz, the released SpeechSR weights of the reference kit) and `hsp extract` (w2v features
   with a random-weight MMS-300m-size model, 7 layers; nothing downloaded) on `--job-seconds` of
   real speech in 3 s clips, against the job's model stage alone (built by the job's own builder):
   in-process, no Ray, on clips already decoded, with the torch threads the job gives its actor.

    PYTHONPATH=. python bench/bench_scale.py --rows 1000 10000 100000 --baseline /tmp/hsp-base

Say the machine's load with the numbers (`uptime` before and after is printed); absolute rates
from a loaded machine are not comparable between runs, the side-by-side ratios are.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RATE = 16000
DISTINCT_CLIPS = 64

# Runs the CLI in this interpreter and records the driver's own peak RSS (not Ray's processes).
DRIVER = """
import json, resource, sys
from pipeline.cli import main
try:
    main(sys.argv[2:], standalone_mode=False)
finally:
    with open(sys.argv[1], "w") as handle:
        json.dump({"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}, handle)
"""


def kit_dir() -> Path:
    return Path(os.environ.get("HSP_REFERENCE_DIR") or REPO.parent / "shared" / "reference")


def speech(seconds: float) -> np.ndarray:
    """`seconds` of real 16 kHz speech (the kit's four reference clips, repeated); tones without the kit."""
    clips = [kit_dir() / "audio" / f"reference_{i}.wav" for i in range(1, 5)]
    if all(p.exists() for p in clips):
        joined = np.concatenate([sf.read(p, dtype="float32")[0] for p in clips])
    else:
        t = np.arange(4 * RATE) / RATE
        joined = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    reps = int(np.ceil(seconds * RATE / joined.size))
    return np.tile(joined, reps)[: int(seconds * RATE)].copy()


def write_clips(folder: Path, count: int, seconds: float) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    audio = speech(count * seconds)
    step = int(seconds * RATE)
    paths = []
    for k in range(count):
        path = folder / f"clip{k:04d}.wav"
        sf.write(path, audio[k * step : (k + 1) * step], RATE, subtype="PCM_16")
        paths.append(str(path))
    return paths


def write_manifest(path: Path, clips: list[str], rows: int) -> Path:
    pq.write_table(pa.table({"id": [f"utt{i:07d}" for i in range(rows)], "audio": [clips[i % len(clips)] for i in range(rows)]}), path)
    return path


# -- 1. the runner against a plain loop -------------------------------------------------------------
def _plain_loop(paths: list[str], done: Any) -> None:
    from pipeline.io.audio import decode_audio, encode_flac

    for path in paths:
        decoded = decode_audio(path, target_sample_rate=RATE, channel_policy="first", max_seconds=3600.0)
        encode_flac(decoded.samples, decoded.sample_rate, 16)
    done.put(len(paths))


def plain_rate(paths: list[str], processes: int) -> tuple[float, float]:
    """Rows per second of the plain decode + encode loop in `processes` forked processes (imports done first),
    and the CPU seconds they used per row."""
    import pipeline.io.audio  # noqa: F401 -- imported before forking: the loop times work, not imports

    context = multiprocessing.get_context("fork")
    done = context.Queue()
    shares = [paths[k::processes] for k in range(processes)]
    workers = [context.Process(target=_plain_loop, args=(share, done)) for share in shares]
    before = os.times()
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    rows = sum(done.get() for _ in workers)
    wall = time.perf_counter() - started
    for worker in workers:
        worker.join()
    after = os.times()
    cpu = after.children_user + after.children_system - before.children_user - before.children_system
    return rows / wall, cpu / rows


class RunFailed(Exception):
    """A job run that did not finish (its log's last error line is the reason)."""

    @property
    def reason(self) -> str:
        return str(self)


def run_cli(source: Path, args: list[str], out: Path, timeout: float) -> dict[str, Any]:
    """Run `hsp ARGS` from the source tree `source` in a fresh interpreter; wall, summary, driver RSS, CPU of its tree.

    CPU: user + system seconds of the driver and every process under it (Ray's raylet, GCS, workers),
    sampled while it runs (each process's last reading counts); a load-independent measure of cost.
    """
    import psutil

    env = dict(os.environ, PYTHONPATH=str(source), RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "disabled"),
               RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    rss_file = out.parent / f"{out.name}.rss.json"
    log = out.parent / f"{out.name}.log"
    cpu: dict[tuple[int, float], float] = {}
    started = time.perf_counter()
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(rss_file), *args, "-o", str(out), "--no-progress"],
                                cwd=source, env=env, stdout=handle, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            if time.perf_counter() - started > timeout:
                proc.kill()
                raise RunFailed(f"ran past {timeout:g} s")
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                tree = []
            for member in tree:
                try:
                    times = member.cpu_times()
                    cpu[(member.pid, member.create_time())] = times.user + times.system
                except psutil.Error:
                    pass
            time.sleep(0.2)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        print(tail, file=sys.stderr)
        raise RunFailed(next((line for line in reversed(tail.splitlines()) if "Error" in line), f"exit {proc.returncode}")[:200])
    summary = json.loads((out / "summary.json").read_text())
    return {"wall": wall, "summary": summary, "rss_mib": json.loads(rss_file.read_text())["maxrss_kib"] / 1024,
            "cpu_seconds": sum(cpu.values())}


def runner_table(args: argparse.Namespace, work: Path) -> list[str]:
    clips = write_clips(work / "clips", DISTINCT_CLIPS, 1.0)
    cores = os.cpu_count() or 1
    lines = [
        f"### Runner: `hsp prepare` on one-second clips vs a plain decode + FLAC loop ({cores} cores)",
        "",
        f"| rows | what | command wall s | job wall s | start-up s | rows/s (job wall) | rows/s (after start-up) "
        f"| x plain loop on {cores} cores (job wall / after start-up) | CPU ms per row (all processes) | driver peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rows in args.rows:
        manifest = write_manifest(work / f"m{rows}.parquet", clips, rows)
        paths = pq.read_table(manifest).column("audio").to_pylist()
        many, many_cpu = plain_rate(paths, cores)
        if rows <= args.single_max_rows:
            one, one_cpu = plain_rate(paths, 1)
            lines.append(f"| {rows} | plain loop, 1 process | | {rows / one:.1f} | | {one:.0f} | | {one / many:.2f} | {one_cpu * 1000:.2f} | |")
        lines.append(f"| {rows} | plain loop, {cores} processes | | {rows / many:.1f} | | {many:.0f} | | 1.00 | {many_cpu * 1000:.2f} | |")
        print(lines[-1], flush=True)
        trees = [("this tree", REPO)]
        if args.baseline and rows <= args.baseline_max_rows:
            trees.append((f"baseline {args.baseline.name}", args.baseline))
        for label, source in trees:
            cli = ["prepare", str(manifest), *args.prepare_args]
            try:
                result = run_cli(source, cli, work / f"out-{rows}-{len(lines)}", timeout=args.timeout)
            except RunFailed as exc:  # a shared machine can lose a raylet under load: once more, then say so
                print(f"# {label}, {rows} rows: {exc}; running it once more", flush=True)
                try:
                    result = run_cli(source, cli, work / f"out-{rows}-{len(lines)}-again", timeout=args.timeout)
                except RunFailed as again:
                    lines.append(f"| {rows} | hsp prepare, {label} | failed twice: {again.reason} | | | | | | | |")
                    continue
            s = result["summary"]
            if s["samples_out"] != rows:
                raise SystemExit(f"{label}: {s['samples_out']} of {rows} rows written")
            job = s["wall_seconds"]
            startup = s.get("startup_seconds")
            after = rows / (job - startup) if startup is not None else None
            lines.append(
                f"| {rows} | hsp prepare, {label} | {result['wall']:.1f} | {job:.1f} | {_fmt(startup, '.1f')} | {rows / job:.0f} "
                f"| {_fmt(after, '.0f')} | {rows / job / many:.2f} / {_fmt(after / many if after else None, '.2f')} "
                f"| {result['cpu_seconds'] * 1000 / rows:.2f} | {result['rss_mib']:.0f} |"
            )
            print(lines[-1], flush=True)
    lines += ["", "start-up: manifest checks, local Ray start and planning (summary.json `startup_seconds`; "
              "a baseline without that field shows -)."]
    return lines


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# -- 2. jobs against their models ---------------------------------------------------------------
def _speech_corpus(work: Path, seconds: float, clip_seconds: float = 3.0) -> tuple[Path, list[np.ndarray]]:
    count = max(1, int(seconds / clip_seconds))
    paths = write_clips(work / "speech", count, clip_seconds)
    manifest = work / "speech.parquet"
    pq.write_table(pa.table({"id": [f"s{i:05d}" for i in range(count)], "audio": paths}), manifest)
    return manifest, [sf.read(p, dtype="float32")[0] for p in paths]


def _model_alone(stage, clips: list[np.ndarray], extra: dict[str, Any]) -> float:
    """Audio seconds (input) per second of the job's model `stage` alone over `clips`, after a warm-up.

    In batches of its batch size, on CPU, with as many torch threads as the job gives its actor
    (Ray sets OMP_NUM_THREADS to the actor's num_cpus): the model as the job runs it, minus the job.
    """
    import torch

    from pipeline.engine.item import Item

    stage.resources.num_gpus = 0.0
    torch.set_num_threads(max(1, int(stage.resources.num_cpus)))
    stage.setup()

    def items(start: int, count: int) -> list[Item]:
        return [Item(f"c{start + k}", start + k, {}, data={"audio": clips[(start + k) % len(clips)], "sample_rate": RATE, **extra})
                for k in range(count)]

    stage(items(0, 1))
    started = time.perf_counter()
    audio = 0.0
    for start in range(0, len(clips), stage.batch_size):
        batch = items(start, min(stage.batch_size, len(clips) - start))
        stage(batch)
        if failed := [i.error for i in batch if i.failed]:
            raise SystemExit(f"{stage.name} failed: {failed[0]}")
        audio += sum(len(clips[i.row % len(clips)]) for i in batch) / RATE
    return audio / (time.perf_counter() - started)


def jobs_table(args: argparse.Namespace, work: Path) -> list[str]:
    manifest, clips = _speech_corpus(work, args.job_seconds)
    audio = sum(len(c) for c in clips) / RATE
    lines = [
        f"### Jobs vs their models alone ({audio:.0f} s of speech in 3 s clips, {os.cpu_count()} cores)",
        "",
        "| job | model | job audio-s/s (job wall) | job audio-s/s (after start-up) | model alone audio-s/s | job / model (after start-up) |",
        "|---|---|---|---|---|---|",
    ]
    for name in args.jobs:
        if name == "upsample":
            from pipeline.upsample import UpsampleConfig, upsample_job

            checkpoint = kit_dir() / "weights" / "speechsr48k" / "G_100000.pth"
            stage = next(s for s in upsample_job(UpsampleConfig(48000, checkpoint=str(checkpoint))).stages() if s.stateful)
            model = _model_alone(stage, clips, {})
            cli = ["upsample", str(manifest), "--checkpoint", str(checkpoint), "--device", "cpu"]
            label = "SpeechSR 48 kHz, released weights"
        elif name == "extract":
            from bench.bench_extract import _models
            from pipeline.extract import ExtractConfig, extract_job

            w2v_dir, _ = _models(work, "mms", False)
            stages = extract_job(ExtractConfig(features=("w2v",), w2v_model=w2v_dir)).stages()
            model = _model_alone(next(s for s in stages if s.stateful), clips, {})
            cli = ["extract", str(manifest), "--features", "w2v", "--w2v-model", w2v_dir, "--device", "cpu"]
            label = "w2v layer 7, random MMS-300m size"
        else:
            raise SystemExit(f"unknown job {name!r}: choose upsample or extract")
        result = run_cli(REPO, cli, work / f"out-{name}", timeout=args.timeout)
        s = result["summary"]
        job = s["wall_seconds"]
        after = audio / (job - s["startup_seconds"])
        lines.append(f"| {name} | {label} | {audio / job:.2f} | {after:.2f} | {model:.2f} | {after / model:.2f} |")
        print(lines[-1], flush=True)
    lines += ["", "after start-up still includes loading the model in each actor; model alone is timed after its warm-up."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="*", default=[1000, 10000, 100000])
    parser.add_argument("--baseline", type=Path, help="an older source tree to run side by side (git archive of a commit)")
    parser.add_argument("--baseline-max-rows", type=int, default=10000, help="run the baseline only up to this many rows")
    parser.add_argument("--single-max-rows", type=int, default=10000, help="time the one-process plain loop only up to this many rows")
    parser.add_argument("--prepare-args", nargs="*", default=[], help="extra `hsp prepare` options, e.g. --num-cpus 4")
    parser.add_argument("--jobs", nargs="*", default=["upsample", "extract"])
    parser.add_argument("--job-seconds", type=float, default=120.0, help="seconds of speech for the jobs table")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()
    print(f"# uptime before: {_uptime()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        work = Path(tmp)
        tables = runner_table(args, work) if args.rows else []
        if args.jobs:
            tables += ["", *jobs_table(args, work)]
    print("\n".join(["", *tables, "", f"# uptime after: {_uptime()}"]))


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
