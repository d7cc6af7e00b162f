"""`hsp export nemo|lhotse`: synthesis outputs as ASR training manifests.

Audio is extracted from the shards to plain FLAC files (``<to>/audio/<key>.flac``): every
NeMo / Lhotse reader opens them, while ``tar#member`` references are not portable across
loaders. Only samples that passed the quality gates are exported unless `include_failed`.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from pipeline.export.samples import passes_gates
from pipeline.io.output import INDEX, OutputDir, check_schema_version
from pipeline.io.shards import iter_samples


def _extract(output: str, audio_dir: Path, include_failed: bool) -> list[dict[str, Any]]:
    out = OutputDir(output)
    out.read_job()  # not a job output, or one of a newer schema version: refused with one line
    index = out.read_parts(INDEX).to_pylist()
    rows = [r for r in index if include_failed or passes_gates(r)]
    by_shard: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        by_shard[row["shard"]][row["key"]] = row
    audio_dir.mkdir(parents=True, exist_ok=True)
    exported = []
    for shard in sorted(by_shard):
        wanted = by_shard[shard]
        for key, members in iter_samples(out.path(shard), fs=out.fs, keys=wanted):
            row = wanted.get(key)
            if row is None or "flac" not in members:
                continue
            path = audio_dir / f"{key}.flac"
            path.write_bytes(members["flac"])
            meta = json.loads(members["json"]) if "json" in members else {}
            check_schema_version(meta, f"{shard}: sample {key!r}")
            exported.append({**row, "path": str(path.resolve()), "meta": meta})
    exported.sort(key=lambda r: r["id"])
    return exported


def export_nemo(output: str, to: str | Path, *, include_failed: bool = False) -> dict[str, Any]:
    """NeMo JSONL (audio_filepath, duration, text, + speaker/source_id/prompt_id/mode) at `to`."""
    to = Path(to)
    rows = _extract(output, to.parent / f"{to.stem}_audio", include_failed)
    to.parent.mkdir(parents=True, exist_ok=True)
    with to.open("w", encoding="utf-8") as handle:
        for r in rows:
            line = {"audio_filepath": r["path"], "duration": r["duration"], "text": r.get("text") or "", "id": r["id"], "speaker": r.get("speaker"), "source_id": r.get("source_id"), "prompt_id": r.get("prompt_id"), "mode": r.get("mode")}
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    return {"manifest": str(to), "samples": len(rows), "hours": sum(r["duration"] for r in rows) / 3600}


def export_lhotse(output: str, to: str | Path, *, include_failed: bool = False) -> dict[str, Any]:
    """Lhotse recordings.jsonl.gz + supervisions.jsonl.gz (one recording / supervision per sample) in `to`."""
    to = Path(to)
    rows = _extract(output, to / "audio", include_failed)
    recordings, supervisions = to / "recordings.jsonl.gz", to / "supervisions.jsonl.gz"
    with gzip.open(recordings, "wt", encoding="utf-8") as rec, gzip.open(supervisions, "wt", encoding="utf-8") as sup:
        for r in rows:
            rate = int(r["sample_rate"])
            num_samples = int(r["meta"].get("num_samples") or round(r["duration"] * rate))
            duration = num_samples / rate
            rec.write(json.dumps({"id": r["id"], "sources": [{"type": "file", "channels": [0], "source": r["path"]}], "sampling_rate": rate, "num_samples": num_samples, "duration": duration, "channel_ids": [0]}) + "\n")
            custom = {k: r.get(k) for k in ("source_id", "prompt_id", "mode", "seed")}
            sup.write(
                json.dumps({"id": r["id"], "recording_id": r["id"], "start": 0.0, "duration": duration, "channel": 0, "text": r.get("text") or "", "language": r["meta"].get("tokens", {}).get("language", "en-us").split("-")[0], "speaker": r.get("speaker"), "custom": custom}, ensure_ascii=False)
                + "\n"
            )
    return {"recordings": str(recordings), "supervisions": str(supervisions), "samples": len(rows)}
