"""Benchmark decode memory: peak RSS of one decode task, one-shot (before) vs block/streaming (`decode_audio`).

"before" is the decode this project shipped until the block decoder (kept here, verbatim in effect):
read the whole file into bytes, decode all channels at once, take the mono channel, resample in one
`soxr.resample` call. "after" is `pipeline.io.audio.decode_audio`: blocks of 64 Ki frames, mono per
block, `soxr.ResampleStream`. Each case runs in its own fresh subprocess and reports its peak RSS as
VmHWM from /proc/self/status (the high-water mark of the process's own memory since exec;
`ru_maxrss` is not used: on Linux a child inherits the parent's high-water mark at exec). The `import`
row is the interpreter with numpy/soundfile/soxr and the pipeline imported, which every case includes.
The outputs of both are compared sample for sample.

    python bench/bench_decode_memory.py                      # 20 min, 44.1 kHz stereo 16-bit WAV -> 16 kHz
    python bench/bench_decode_memory.py --minutes 60 --rate 48000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]

CASE = r"""
import json, sys, time
import numpy as np, soundfile as sf, soxr
import pipeline.io.audio
mode, path, target, policy, output = sys.argv[1:6]
target = None if target == "native" else int(target)
result = {"mode": mode}
started = time.perf_counter()
if mode == "before":
    import io
    raw = open(path, "rb").read()
    with sf.SoundFile(io.BytesIO(raw)) as handle:
        rate = handle.samplerate
        data = handle.read(dtype="float32", always_2d=True)
    mono = data[:, 0] if policy == "first" else data.mean(axis=1)
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if target is not None and target != rate:
        mono = soxr.resample(mono, rate, target, quality="HQ").astype(np.float32, copy=False)
    samples = mono
elif mode == "after":
    samples = pipeline.io.audio.decode_audio(path, target_sample_rate=target, channel_policy=policy).samples
if mode != "import":
    result["seconds"] = time.perf_counter() - started
    result["output_mib"] = samples.nbytes / 2**20
    np.save(output, samples)
with open("/proc/self/status") as status:
    hwm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
result["peak_rss_mib"] = hwm_kib / 1024
print(json.dumps(result))
"""


def run_case(mode: str, path: Path, target: str, policy: str, output: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)}
    done = subprocess.run([sys.executable, "-c", CASE, mode, str(path), target, policy, str(output)],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"case {mode} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=44100, help="source sample rate")
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--targets", nargs="+", default=["16000", "native"], help="output rates ('native': no resampling)")
    parser.add_argument("--policy", choices=["first", "mean"], default="first")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        source = tmp_path / "long.wav"
        frames, block = int(args.minutes * 60 * args.rate), 1 << 20
        rng = np.random.default_rng(0)
        with sf.SoundFile(source, "w", args.rate, args.channels, subtype="PCM_16") as out:
            for at in range(0, frames, block):
                n = min(block, frames - at)
                out.write((0.1 * rng.standard_normal((n, args.channels))).astype(np.float32))
        size_mib = source.stat().st_size / 2**20
        print(f"source: {args.minutes:g} min, {args.rate} Hz, {args.channels} ch, 16-bit WAV, {size_mib:.0f} MiB; "
              f"channel policy {args.policy}; load: {os.getloadavg()[0]:.2f} (1-min average)")
        baseline = run_case("import", source, "native", args.policy, tmp_path / "none.npy")["peak_rss_mib"]
        print(f"import alone (interpreter + numpy/soundfile/soxr + pipeline.io.audio): {baseline:.0f} MiB peak RSS\n")
        header = f"{'output rate':<12} {'case':<7} {'peak RSS MiB':>12} {'minus import':>12} {'x file':>7} {'output MiB':>10} {'seconds':>8}"
        print(header)
        print("-" * len(header))
        for target in args.targets:
            results = {}
            for mode in ("before", "after"):
                r = run_case(mode, source, target, args.policy, tmp_path / f"{mode}.npy")
                results[mode] = r
                above = r["peak_rss_mib"] - baseline
                print(f"{target:<12} {mode:<7} {r['peak_rss_mib']:>12.0f} {above:>12.0f} {r['peak_rss_mib'] / size_mib:>7.2f} "
                      f"{r['output_mib']:>10.0f} {r['seconds']:>8.2f}")
            before, after = np.load(tmp_path / "before.npy"), np.load(tmp_path / "after.npy")
            same = before.shape == after.shape
            diff = float(np.max(np.abs(before - after))) if same and before.size else float("nan")
            del before, after
            ratio = results["before"]["peak_rss_mib"] / results["after"]["peak_rss_mib"]
            print(f"{'':<12} same length: {same}, max |before - after|: {diff:.3g}; peak RSS before/after: {ratio:.2f}x")


if __name__ == "__main__":
    main()
