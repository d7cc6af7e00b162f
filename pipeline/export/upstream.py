"""`hsp export upstream`: an extract output in the layout upstream's `train_ttv_v1.py` trains on.

Layout under DIR (``<name>`` defaults to ``data``)::

    <name>_16k/<key>.wav      16-bit PCM, 16 kHz (the stored FLAC samples, bit-exact)
    <name>_w2v/<key>.pt       float32 (1, 1024, frames)   as extract_w2v.py saves it
    <name>_f0/<key>.pt        float32 (1, N), N = 4 x frames   as extract_f0.py saves it
    <name>_token/<key>.pt     int64 (n,), ids WITHOUT blanks (the loader intersperses them)
    filelists/{train,test}_{wav,f0,token,w2v}.txt   absolute paths, line i of each list = sample i

Samples are kept with the filters of upstream's ``prepare_filelist.py``, in its order: F0 not all
zero; ``samples // 320`` within [32, 600]; a token file present; ``2 * n + 1 <= samples // 320``;
n within [1, 200]. Upstream writes train lists only; the config also names ``test_wav.txt``
(the eval loader is built but never iterated), so ``test_count`` samples, chosen by a hash of
their id, go to the test lists (default 0: empty test lists).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import OutputError
from pipeline.export.errors import ExportError
from pipeline.io.npy import read_npy
from pipeline.io.output import INDEX, OutputDir
from pipeline.io.shards import iter_samples

NEEDED = ("w2v", "f0", "tokens")
LISTS = ("wav", "f0", "token", "w2v")


@dataclass(frozen=True)
class UpstreamFilters:
    """prepare_filelist.py's defaults: frames are ``samples // 320``, tokens are without blanks."""

    wav_min: int = 32
    wav_max: int = 600
    text_min: int = 1
    text_max: int = 200


def _reject_reason(f0: np.ndarray, num_samples: int, phonemes: int, filters: UpstreamFilters) -> str | None:
    """The first prepare_filelist.py filter a sample fails, or None."""
    if f0.sum() == 0:
        return "f0_all_zero"
    frames = num_samples // 320
    if frames < filters.wav_min:
        return "short_audio"
    if frames > filters.wav_max:
        return "long_audio"
    if phonemes * 2 + 1 > frames:
        return "text_longer_than_audio"
    if not filters.text_min <= phonemes <= filters.text_max:
        return "text_length"
    return None


def export_upstream(
    out_root: str,
    to_dir: str | Path,
    *,
    name: str = "data",
    test_count: int = 0,
    filters: UpstreamFilters = UpstreamFilters(),
) -> dict[str, Any]:
    """Write upstream's training files and filelists for the samples of an extract output.

    Returns a report (counts per filter, files written), also saved as ``DIR/export.json``.
    """
    import soundfile as sf
    import torch

    out = OutputDir(str(out_root))
    try:
        job = out.read_job()
    except OutputError as exc:
        raise ExportError(str(exc)) from exc
    if job.get("job") != "extract":
        raise ExportError(f"{out_root} is not the output of `hsp extract` but of {job.get('job')!r}; pass the -o folder of an extract run")
    features = set(job["options"].get("features", []))
    missing = [f for f in NEEDED if f not in features]
    if missing:
        raise ExportError(f"{out_root} was extracted without {missing}; upstream training needs w2v, f0 and tokens")
    add_blank = bool(job["options"].get("add_blank", True))
    to_dir = Path(to_dir).resolve()
    lists_dir = to_dir / "filelists"
    if "_wav" in str(lists_dir):
        raise ExportError(
            f"upstream's loader derives the other filelists by replacing every '_wav' in the path of "
            f"train_wav.txt; {lists_dir} contains '_wav' elsewhere: choose another --to"
        )
    if "16k" in name:
        raise ExportError("--name must not contain '16k' (upstream derives feature paths by replacing it)")

    index = out.read_parts(INDEX, columns=["id", "key", "shard", "num_samples"]).to_pylist()
    by_shard: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in index:
        by_shard[row["shard"]].append(row)
    dirs = {kind: to_dir / f"{name}_{kind}" for kind in ("16k", "w2v", "f0", "token")}
    for d in [*dirs.values(), lists_dir]:
        d.mkdir(parents=True, exist_ok=True)

    reasons: Counter[str] = Counter()
    kept: list[tuple[str, str]] = []  # (id, key)
    for shard in sorted(by_shard):
        rows = {r["key"]: r for r in by_shard[shard]}
        seen: set[str] = set()
        for key, members in iter_samples(out.path(shard), fs=out.fs):
            row = rows.get(key)
            if row is None:
                continue
            seen.add(key)
            absent = [m for m in ("flac", "w2v.npy", "f0.npy", "tokens.npy") if m not in members]
            if absent:
                raise ExportError(f"sample {row['id']!r} in {shard} lacks {absent}")
            f0 = read_npy(members["f0.npy"]).astype(np.float32)
            tokens = read_npy(members["tokens.npy"]).astype(np.int64)
            ids = tokens[1::2] if add_blank else tokens
            audio, rate = sf.read(io.BytesIO(members["flac"]), dtype="int16")
            reason = _reject_reason(f0, audio.shape[0], ids.shape[0], filters)
            if reason is not None:
                reasons[reason] += 1
                continue
            w2v = read_npy(members["w2v.npy"]).astype(np.float32)
            sf.write(dirs["16k"] / f"{key}.wav", audio, rate, subtype="PCM_16")
            torch.save(torch.from_numpy(np.ascontiguousarray(w2v))[None], dirs["w2v"] / f"{key}.pt")
            torch.save(torch.from_numpy(np.ascontiguousarray(f0))[None], dirs["f0"] / f"{key}.pt")
            torch.save(torch.from_numpy(np.ascontiguousarray(ids)), dirs["token"] / f"{key}.pt")
            kept.append((row["id"], key))
        if len(seen) != len(rows):
            raise ExportError(f"{shard} lacks samples its index lists: {sorted(set(rows) - seen)[:5]}")

    by_hash = sorted((sample_id for sample_id, _ in kept), key=lambda i: hashlib.sha256(i.encode("utf-8")).hexdigest())
    test_ids = set(by_hash[:test_count])
    kept.sort(key=lambda pair: pair[1])
    splits = {"train": [k for i, k in kept if i not in test_ids], "test": [k for i, k in kept if i in test_ids]}
    suffix = {"wav": ("16k", ".wav"), "f0": ("f0", ".pt"), "token": ("token", ".pt"), "w2v": ("w2v", ".pt")}
    for split, keys in splits.items():
        for kind in LISTS:
            folder, ext = suffix[kind]
            lines = [str(dirs[folder] / f"{key}{ext}") for key in keys]
            (lists_dir / f"{split}_{kind}.txt").write_text("".join(line + "\n" for line in lines))

    report = {
        "source": str(out_root),
        "samples_in": len(index),
        "kept": len(kept),
        "train": len(splits["train"]),
        "test": len(splits["test"]),
        "rejected": dict(sorted(reasons.items())),
        "filters": filters.__dict__,
        "train_filelist_path": str(lists_dir / "train_wav.txt"),
        "test_filelist_path": str(lists_dir / "test_wav.txt"),
    }
    if not splits["train"]:
        report["warning"] = "no training sample left: train_ttv_v1.py needs at least one (check the filters and --test-count)"
    (to_dir / "export.json").write_text(json.dumps(report, indent=2))
    return report
