"""`hsp manifest build`: scan a corpus folder into a Parquet manifest.

Durations and sample rates come from file headers (no decoding), read in parallel threads.
Transcripts come from sidecar files next to the audio; speakers from layouts that are
recognisable (LibriTTS/LibriSpeech `speaker/chapter/speaker_chapter_*`, VCTK `p225/p225_001`,
or a parent folder whose name prefixes the file name). Ids are the relative path without
extension, so they are stable across runs and machines.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import soundfile as sf

from pipeline.errors import InputError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3")
# Tried in order; LibriTTS ships .normalized.txt and .original.txt, prefer the normalized one.
TRANSCRIPT_SUFFIXES = (".normalized.txt", ".txt", ".lab", ".original.txt")

MANIFEST_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("audio", pa.string()),
        ("text", pa.string()),
        ("speaker", pa.string()),
        ("duration", pa.float64()),
        ("sample_rate", pa.int64()),
        ("channels", pa.int64()),
    ]
)


def find_audio(root: Path) -> list[Path]:
    """All audio files under `root`, sorted for a deterministic manifest."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames if f.lower().endswith(AUDIO_EXTENSIONS) and not f.startswith("."))
    return sorted(found)


def read_transcript(audio: Path) -> str | None:
    stem = audio.with_suffix("")
    for suffix in TRANSCRIPT_SUFFIXES:
        sidecar = stem.with_name(stem.name + suffix)
        if sidecar.is_file():
            text = sidecar.read_text(encoding="utf-8", errors="replace").strip()
            if suffix == ".lab" and "\t" in text:  # some .lab files are label tracks, not text
                continue
            return " ".join(text.split())
    return None


def infer_speaker(relative: Path) -> str | None:
    """Speaker from recognisable layouts; None when the layout says nothing reliable."""
    parts = relative.parts
    stem = relative.stem
    if len(parts) >= 3 and parts[-3].isdigit() and parts[-2].isdigit() and stem.startswith(f"{parts[-3]}_{parts[-2]}_"):
        return parts[-3]  # LibriTTS / LibriSpeech: speaker/chapter/speaker_chapter_...
    if len(parts) >= 2:
        parent = parts[-2]
        if stem.startswith(parent + "_") or stem.startswith(parent + "-"):
            return parent  # VCTK p225/p225_001, and similar
    return None


def _header(path: Path) -> tuple[float | None, int | None, int | None]:
    try:
        info = sf.info(str(path))
    except Exception:
        return None, None, None  # unreadable headers are caught by the job as error rows
    return (info.frames / info.samplerate if info.samplerate else None), info.samplerate, info.channels


class CorpusError(InputError, FileNotFoundError):
    """The corpus folder is not a folder or holds no audio file."""


def build_manifest(root: str | Path, *, relative_to: str | Path | None = None, workers: int = 16) -> pa.Table:
    """Scan `root` into a manifest table; audio paths are relative to `relative_to` when given."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise CorpusError(f"not a directory: {root}; pass the folder holding the corpus' audio files")
    files = find_audio(root)
    if not files:
        raise CorpusError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        headers = list(pool.map(_header, files))
        transcripts = list(pool.map(read_transcript, files))
    base = Path(relative_to).resolve() if relative_to is not None else None
    rows = {name: [] for name in MANIFEST_SCHEMA.names}
    for path, (duration, rate, channels), text in zip(files, headers, transcripts, strict=True):
        relative = path.relative_to(root)
        rows["id"].append(relative.with_suffix("").as_posix())
        rows["audio"].append(os.path.relpath(path, base) if base is not None else str(path))
        rows["text"].append(text)
        rows["speaker"].append(infer_speaker(relative))
        rows["duration"].append(duration)
        rows["sample_rate"].append(rate)
        rows["channels"].append(channels)
    _disambiguate(rows["id"], files)
    return pa.table(rows, schema=MANIFEST_SCHEMA)


def _disambiguate(ids: list[str], files: list[Path]) -> None:
    """Keep ids unique when two files differ only by extension (a.wav and a.flac)."""
    seen: dict[str, int] = {}
    for sample_id in ids:
        seen[sample_id] = seen.get(sample_id, 0) + 1
    for position, (sample_id, path) in enumerate(zip(ids, files, strict=True)):
        if seen[sample_id] > 1:
            ids[position] = f"{sample_id}{path.suffix.lower()}"


def write_manifest(root: str | Path, output: str | Path, *, absolute: bool = False, workers: int = 16) -> pa.Table:
    """Scan `root` and write the manifest to `output` (.parquet); paths relative to its folder unless `absolute`."""
    import pyarrow.parquet as pq

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    table = build_manifest(root, relative_to=None if absolute else output.resolve().parent, workers=workers)
    pq.write_table(table, output)
    return table


def describe_manifest(table: pa.Table) -> str:
    """Files, hours, transcripts and speakers of a manifest, in one line."""
    hours = sum(d or 0.0 for d in table.column("duration").to_pylist()) / 3600
    texts = sum(t is not None for t in table.column("text").to_pylist())
    speakers = len({s for s in table.column("speaker").to_pylist() if s})
    return f"{table.num_rows} files, {hours:.3f} h, {texts} with transcripts, {speakers} speakers"
