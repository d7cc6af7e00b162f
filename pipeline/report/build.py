"""`hsp report OUT -o DIR`: gather, plot, write DIR/index.html + DIR/assets/."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import OutputError
from pipeline.io.npy import read_npy
from pipeline.io.output import OutputDir
from pipeline.report import plots
from pipeline.report.collect import count_parts, scan_errors, scan_index
from pipeline.report.inspect import inspect_output
from pipeline.report.samples import (
    AUDIO_EXTS,
    NPY_HEADER_BYTES,
    PROMPT_PATH_KEYS,
    SOURCE_PATH_KEYS,
    Clip,
    npy_shape,
    open_rows,
    output_clip,
    path_clip,
    source_clip,
)

SYNTH_JOBS = ("synthesize", "augment")
MARKER = "hsp-report"  # written into index.html, so a re-run may replace a folder it made



class ReportDestinationError(OutputError, FileExistsError):
    """The report folder exists and holds something else than an hsp report: it is never overwritten."""

@dataclass
class Figure:
    name: str
    title: str
    caption: str


@dataclass
class Player:
    label: str
    asset: str
    rate: int
    seconds: float
    origin: str


@dataclass
class SampleCard:
    sample_id: str
    fields: dict[str, Any]
    players: list[Player] = field(default_factory=list)
    spectrogram: str | None = None
    note: str = ""


@dataclass
class ReportContent:
    inspection: dict[str, Any]
    kind: str  # "samples", "before_after" or "synthesis"
    figures: list[Figure] = field(default_factory=list)
    feature_figures: list[Figure] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)
    cards: list[SampleCard] = field(default_factory=list)
    score_figures: list[Figure] = field(default_factory=list)
    worst: dict[str, list[SampleCard]] = field(default_factory=dict)  # score column -> its worst samples, worst first
    unscored: dict[str, int] = field(default_factory=dict)  # score column -> rows without a value
    sampled_rows: int = 0
    stats_rows: int = 0
    seed: int = 0
    generated: float = field(default_factory=time.time)


@dataclass
class ReportResult:
    path: Path
    images: int
    audio: int
    bytes: int
    partial: bool
    samples_out: int


class _Assets:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = {"png": 0, "audio": 0}

    def write(self, name: str, data: bytes) -> str:
        (self.folder / name).write_bytes(data)
        self.count["png" if name.endswith(".png") else "audio"] += 1
        return f"assets/{name}"


def _bar(progress: bool, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="file", disable=not progress, leave=False)


def prepare_folder(dest: Path) -> Path:
    """Create DEST (or reuse one this command made); refuse to overwrite anything else."""
    if dest.exists():
        index = dest / "index.html"
        ours = index.is_file() and MARKER in index.read_text(encoding="utf-8", errors="replace")[:2000]
        if not ours and any(dest.iterdir()):
            raise ReportDestinationError(f"{dest} exists and is not an hsp report; pass a new or empty folder to -o")
        if (dest / "assets").is_dir():
            shutil.rmtree(dest / "assets")
    (dest / "assets").mkdir(parents=True, exist_ok=True)
    return dest


def build_report(root: str, dest: str | Path, samples: int = 6, seed: int = 0, stats_samples: int = 256, top_speakers: int = 20,
                 progress: bool = False, worst: int = 3) -> ReportResult:
    """Write the report of the job output `root` into the folder `dest`; see docs/report.md."""
    from pipeline.report.page import render

    inspection = inspect_output(root)  # raises for a folder that is not a job output
    out = OutputDir(root)
    inspection["recorded"] = out.read_json("summary.json") or {}  # versions and command of the last run
    dest = prepare_folder(Path(dest))
    assets = _Assets(dest / "assets")
    k = max(samples, stats_samples)

    with _bar(progress, count_parts(out), "report: index parts") as bar:
        stats = scan_index(out, k=k, seed=seed, progress=bar, worst=worst)
    errors = scan_errors(out)
    job_name = str(inspection["job"].get("job"))
    content = ReportContent(inspection, kind="samples", errors=errors, seed=seed)

    content.figures += _index_figures(stats, assets, top_speakers)

    stat_rows = stats.sampled
    player_rows = stats.sampled[:samples]
    exts = {"f0.npy", "w2v.npy"}
    with _bar(progress, len({r["shard"] for r in stat_rows}), "report: reading sampled shards") as bar:
        opened_stats = open_rows(out, stat_rows, exts, limits={"w2v.npy": NPY_HEADER_BYTES}, progress=bar)
    content.stats_rows = len(opened_stats)
    content.feature_figures += _feature_figures(opened_stats, stats, assets)

    with _bar(progress, len({r["shard"] for r in player_rows}), "report: audio of sampled shards") as bar:
        opened_players = open_rows(out, player_rows, set(AUDIO_EXTS), progress=bar)
    content.sampled_rows = len(opened_players)
    metas = [o.meta for o in opened_players]
    if job_name in SYNTH_JOBS or any("prompt_id" in m or "source_id" in m for m in metas):
        content.kind = "synthesis"
    elif job_name == "upsample" or any("source_shard" in m or "source_key" in m for m in metas):
        content.kind = "before_after"
    root_path = Path(root)
    for number, opened in enumerate(opened_players):
        content.cards.append(_card(number, opened, content.kind, root_path, assets))
    _score_section(content, stats.scores, out, root_path, assets, progress)

    html = render(content, MARKER)
    (dest / "index.html").write_text(html, encoding="utf-8")
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    summary = inspection["summary"]
    return ReportResult(dest / "index.html", assets.count["png"], assets.count["audio"], size, not summary["complete"], summary["samples_out"])


def _index_figures(stats, assets: _Assets, top_speakers: int) -> list[Figure]:
    figures: list[Figure] = []
    if stats.durations.size:
        assets.write("durations.png", plots.duration_histogram(stats.durations, stats.source_durations if stats.source_durations.size else None))
        figures.append(Figure("assets/durations.png", "Durations", f"all {stats.durations.size} samples (index.parquet)"))
    if stats.speakers:
        assets.write("speakers.png", plots.speaker_counts(stats.speakers, top_speakers))
        figures.append(Figure("assets/speakers.png", "Speakers", f"{len(stats.speakers)} speakers over {sum(stats.speakers.values())} samples"))
    if stats.source_rates or stats.source_channels:
        assets.write("inputs.png", plots.input_mix(stats.source_rates, stats.source_channels))
        out_rates = ", ".join(f"{r / 1000:g} kHz" for r in sorted(stats.output_rates)) or "n/a"
        figures.append(Figure("assets/inputs.png", "Inputs: sample rates and channels", f"output rate: {out_rates}"))
    return figures


def _score_section(content: ReportContent, scores, out: OutputDir, root: Path, assets: _Assets, progress: bool) -> None:
    """Score distributions (all rows) and, per score, its worst samples with players."""
    from pipeline.report.scores import LABELS

    values = scores.distributions()
    content.unscored = {c: n for c, n in scores.unscored.items() if n}
    if not values:
        return
    assets.write("scores.png", plots.score_histograms(values, LABELS))
    content.score_figures.append(Figure("assets/scores.png", "Quality scores", f"every scored row of index.parquet; line: median ({', '.join(values)})"))
    rows = {column: scores.worst_rows(column) for column in values}
    wanted = list({r["id"]: r for column_rows in rows.values() for r in column_rows}.values())
    with _bar(progress, len({r["shard"] for r in wanted}), "report: audio of the worst samples") as bar:
        opened = {o.row["id"]: o for o in open_rows(out, wanted, set(AUDIO_EXTS), progress=bar)}
    number = 100  # asset names apart from the random cards'
    for column, column_rows in rows.items():
        cards = []
        for row in column_rows:
            if row["id"] not in opened:
                continue
            card = _card(number, opened[row["id"]], content.kind, root, assets)
            card.fields = {column: f"{row['value']:.4g}", **card.fields}
            cards.append(card)
            number += 1
        content.worst[column] = cards


def _feature_figures(opened, stats, assets: _Assets) -> list[Figure]:
    figures: list[Figure] = []
    f0s = []
    for o in opened:
        if "f0.npy" in o.members:
            try:
                f0s.append((o.row["id"], np.asarray(read_npy(o.members["f0.npy"]), dtype=np.float32).reshape(-1)))
            except ValueError:
                continue
    voiced = np.concatenate([f[f > 0] for _, f in f0s]) if f0s else np.zeros(0)
    if voiced.size:
        rate = float((opened[0].meta.get("f0") or {}).get("frame_rate", 200)) if opened else 200.0
        assets.write("f0_hist.png", plots.f0_histogram(voiced, len(f0s)))
        figures.append(Figure("assets/f0_hist.png", "F0 distribution", f"voiced frames of {len(f0s)} sampled utterances (f0.npy)"))
        assets.write("f0_contours.png", plots.f0_contours(f0s[:4], frame_rate=rate))
        figures.append(Figure("assets/f0_contours.png", "F0 contours", f"{min(4, len(f0s))} sampled utterances at {rate:g} frames/s"))
    frames, durations, where = stats.w2v_frames, stats.w2v_durations, "all samples (index column w2v_frames)"
    if not frames.size:
        pairs = [(npy_shape(o.members["w2v.npy"]), o.row.get("duration")) for o in opened if "w2v.npy" in o.members]
        pairs = [(s[-1], d) for s, d in pairs if s]
        frames = np.array([f for f, _ in pairs], dtype=np.float32)
        durations = np.array([d if d is not None else np.nan for _, d in pairs], dtype=np.float32)
        where = f"{frames.size} sampled samples (w2v.npy headers)"
    if frames.size:
        ok = np.isfinite(durations) if durations.size == frames.size else None
        assets.write("w2v_frames.png", plots.w2v_frames(frames[ok] if ok is not None else frames, durations[ok] if ok is not None else None))
        figures.append(Figure("assets/w2v_frames.png", "w2v frame counts", where))
    return figures


def _player(label: str, clip: Clip, name: str, assets: _Assets) -> Player:
    asset = assets.write(f"{name}.{clip.ext}", clip.data)
    return Player(label, asset, clip.rate, clip.audio.size / clip.rate, clip.origin)


def _card(number: int, opened, kind: str, root: Path, assets: _Assets) -> SampleCard:
    meta, row = opened.meta, opened.row
    fields = {
        "speaker": meta.get("speaker", row.get("speaker")),
        "duration": f"{row['duration']:.2f} s" if row.get("duration") is not None else None,
        "text": meta.get("text", row.get("text")),
    }
    if kind == "synthesis":
        fields.update({"source_id": meta.get("source_id"), "prompt_id": meta.get("prompt_id")})
    card = SampleCard(str(row["id"]), {k: v for k, v in fields.items() if v not in (None, "")})
    output = output_clip(opened)
    bases = (root, root.parent)
    if kind == "before_after":
        source = source_clip(opened, root)
        panels = []
        if source is not None:
            card.players.append(_player(f"before ({source.rate / 1000:g} kHz)", source, f"s{number:02d}-before", assets))
            panels.append((f"before: {source.rate / 1000:g} kHz", source.audio, source.rate))
        else:
            card.note = "source audio not found (it is read from the json's source_shard/source_key or source path)"
        if output is not None:
            card.players.append(_player(f"after ({output.rate / 1000:g} kHz)", output, f"s{number:02d}-after", assets))
            panels.append((f"after: {output.rate / 1000:g} kHz", output.audio, output.rate))
        if panels:
            card.spectrogram = assets.write(f"s{number:02d}-spec.png", plots.spectrograms(panels))
        return card
    if kind == "synthesis":
        for label, keys in (("source", SOURCE_PATH_KEYS), ("prompt", PROMPT_PATH_KEYS)):
            clip = path_clip(meta, keys, bases)
            if clip is not None:
                card.players.append(_player(label, clip, f"s{number:02d}-{label}", assets))
    if output is not None:
        card.players.append(_player("output" if kind == "synthesis" else f"{output.rate / 1000:g} kHz", output, f"s{number:02d}-out", assets))
        card.spectrogram = assets.write(f"s{number:02d}-spec.png", plots.spectrograms([(f"spectrogram, {output.rate / 1000:g} kHz", output.audio, output.rate)]))
    elif not card.players:
        card.note = "no audio member in this sample"
    return card
