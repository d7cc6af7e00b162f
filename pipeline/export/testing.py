"""Job outputs written through the real sink without running Ray: for export tests and benchmarks.

`synthetic_output` commits parts with `pipeline.engine.sink.commit_part`, exactly as a job's Ray tasks
do, with the index columns and sample json of a synthesis job (mode, source/prompt ids, seed,
gates, with some samples failing a gate) and, optionally, extra index columns such as a score
job's. Audio is a distinct short tone per sample, so byte and sample comparisons mean something.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import soundfile as sf

from pipeline.engine.item import Item, ItemError
from pipeline.engine.sink import SinkConfig, commit_part
from pipeline.io.output import SCHEMA_VERSION, OutputDir, index_schema
from pipeline.synthesize import SYNTHESIZE_INDEX_FIELDS


def tone_flac(seconds: float, rate: int, freq: float, bits: int = 16) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    audio = (0.3 * np.sin(2 * np.pi * freq * t) * np.hanning(t.size)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="FLAC", subtype=f"PCM_{bits}")
    return buffer.getvalue()


def sample_id(n: int) -> str:
    """Mostly plain ids, some that are not safe file names (slashes, dots, unicode)."""
    if n % 7 == 3:
        return f"spk{n % 5}/utt.{n}"
    if n % 11 == 5:
        return f"ünï {n}"
    return f"utt{n:06d}"


def synthetic_output(
    root: str | Path,
    samples: int,
    *,
    job: str = "synthesize",
    rate: int = 16000,
    seconds: float = 0.5,
    rows_per_part: int = 100,
    fail_gate_every: int = 5,
    errors: int = 2,
    extra_fields: Sequence[tuple[pa.Field, Any]] = (),
    bits: int = 16,
    max_shard_bytes: int = 1 << 30,
    extra_members: dict[str, bytes] | None = None,
) -> Path:
    """An output of `samples` committed samples (+ `errors` error rows) in parts of `rows_per_part`.

    fail_gate_every: every n-th sample has ``gates_passed`` False (0: none). extra_fields: extra
    index columns as (field, value or callable(n) -> value), e.g. a score column. extra_members:
    members every sample also has (an extract output's ``w2v.npy``, ``denoised.flac``, ...).
    """
    root = Path(root)
    out = OutputDir(str(root))
    out.ensure_layout()
    run_id = out.start_run()
    out.write_json("job.json", {"job": job, "schema_version": SCHEMA_VERSION, "options": {"synthetic": True}, "manifest": {"path": "synthetic.parquet", "rows": samples + errors}})
    fields = [*SYNTHESIZE_INDEX_FIELDS, *(f for f, _ in extra_fields)]
    config = SinkConfig(str(root), run_id, job, index_schema(fields), max_shard_bytes, "test")
    items: list[Item] = []
    for n in range(samples):
        item = _item(n, rate, seconds + 0.01 * (n % 10), fail_gate_every, extra_fields, bits)
        item.members.update(extra_members or {})
        items.append(item)
    for n in range(errors):
        item = Item(f"bad{n}", samples + n, {})
        item.error = ItemError("synthesis_input", "ValueError", f"[synthesis_input] synthetic failure {n}")
        items.append(item)
    for start in range(0, len(items), rows_per_part):
        commit_part(items[start : start + rows_per_part], config)
    return root


def _item(n: int, rate: int, seconds: float, fail_gate_every: int, extra_fields: Sequence[tuple[pa.Field, Any]], bits: int) -> Item:
    mode = "vc" if n % 2 == 0 else "tts"
    failed = bool(fail_gate_every) and n % fail_gate_every == fail_gate_every - 1
    audio = tone_flac(seconds, rate, 150.0 + 7.0 * (n % 50), bits)
    num_samples = round(seconds * rate)
    duration = num_samples / rate
    item = Item(sample_id(n), n, {})
    item.members = {"flac": audio}
    gates = {"passed": not failed, "failed": ["near_silence"] if failed else [], "rms_dbfs": -math.inf if failed else -13.5, "duration_ratio": 1.0}
    item.meta = {
        "mode": mode,
        "source_id": f"src{n % 13}",
        "prompt_id": f"prompt{n % 17}",
        "text": f"synthetic sentence number {n}",
        "speaker": f"spk{n % 5}",
        "params": {"noise_scale": 0.333, "seed": 1000 + n},
        "sample_rate": rate,
        "duration": duration,
        "num_samples": num_samples,
        "bits": bits,
        "gates": gates,
    }
    item.index = {
        "duration": duration,
        "source_duration": duration * 1.1 if mode == "vc" else None,
        "mode": mode,
        "source_id": f"src{n % 13}",
        "prompt_id": f"prompt{n % 17}",
        "text": item.meta["text"],
        "speaker": item.meta["speaker"],
        "seed": 1000 + n,
        "sample_rate": rate,
        "prompt_seconds": 3.0,
        "token_count": 20 + n % 9,
        "gates_passed": not failed,
        "gate_failures": "near_silence" if failed else "",
    }
    for field, value in extra_fields:
        item.index[field.name] = value(n) if callable(value) else value
    return item
