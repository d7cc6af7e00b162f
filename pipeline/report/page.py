"""The report's HTML: one static page, inline CSS, no scripts, no network."""

from __future__ import annotations

import datetime as dt
import shlex
from html import escape
from typing import Any

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#d9e2ec; --bg:#f5f7fa; --accent:#3b6ea8; --warn:#fff4d6; --warn-line:#e0b64a; }
* { box-sizing:border-box; }
body { margin:0; font:15px/1.45 "DejaVu Sans", system-ui, sans-serif; color:var(--ink); background:var(--bg); }
header { background:#fff; border-bottom:1px solid var(--line); padding:18px 32px 14px; }
header h1 { margin:0; font-size:22px; }
header .sub { color:var(--muted); font-size:13px; margin-top:4px; word-break:break-all; }
main { max-width:1240px; margin:0 auto; padding:8px 32px 40px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px; margin-top:18px; }
h2 { font-size:17px; margin:0 0 12px; }
.banner { margin-top:18px; padding:12px 16px; border-radius:8px; background:var(--warn); border:1px solid var(--warn-line); }
.banner.ok { background:#e3f6e8; border-color:#7cc08f; }
.facts { display:grid; grid-template-columns:repeat(auto-fill, minmax(170px, 1fr)); gap:10px; }
.fact { background:var(--bg); border-radius:6px; padding:8px 12px; }
.fact .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.fact .v { font-size:19px; font-weight:600; }
table { border-collapse:collapse; width:100%; font-size:14px; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
code, .mono { font-family:"DejaVu Sans Mono", monospace; font-size:12.5px; word-break:break-all; }
.figs { display:grid; grid-template-columns:repeat(auto-fill, minmax(520px, 1fr)); gap:16px; }
figure { margin:0; }
figure img { width:100%; height:auto; border:1px solid var(--line); border-radius:6px; background:#fff; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
figcaption b { color:var(--ink); }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(520px, 1fr)); gap:16px; }
.cards.wide { grid-template-columns:1fr; }
.card { border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card h3 { margin:0 0 6px; font-size:14px; font-family:"DejaVu Sans Mono", monospace; word-break:break-all; }
.card .meta { color:var(--muted); font-size:13px; margin-bottom:6px; }
.card .text { font-style:italic; margin:4px 0 8px; }
.players { display:flex; flex-wrap:wrap; gap:10px; }
.player { flex:1 1 220px; max-width:420px; }
.player .label { font-size:12px; color:var(--muted); }
audio { width:100%; height:36px; }
.card img { width:100%; height:auto; margin-top:8px; border-radius:4px; }
.note { color:#9a5b00; font-size:13px; }
details { margin-top:10px; }
summary { cursor:pointer; color:var(--accent); }
footer { color:var(--muted); font-size:12px; text-align:center; margin:24px 0; }
"""


def _fmt_seconds(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _fmt_hours(hours: float) -> str:
    return f"{hours:.2f} h" if hours >= 1 else f"{hours * 60:.2f} min"


def _fact(key: str, value: Any) -> str:
    return f'<div class="fact"><div class="k">{escape(key)}</div><div class="v">{escape(str(value))}</div></div>'


def _state(summary: dict[str, Any]) -> tuple[str, str]:
    if summary["complete"]:
        return "ok", "Complete: every manifest row is either a sample or an error row."
    if summary["rows_missing"]:
        return "warn", (
            f"PARTIAL output: {summary['rows_missing']} of {summary['rows_in']} manifest rows are not done yet "
            "(the job was stopped or is still running). The figures below cover what is committed; "
            "re-run the same command to finish."
        )
    return "warn", "INCOMPLETE output: see duplicates / errors below (hsp inspect has the details)."


def _summary_section(content) -> str:
    inspection = content.inspection
    s, job, recorded = inspection["summary"], inspection["job"], inspection.get("recorded") or {}
    wall = s.get("wall_seconds_total") or 0.0
    seconds_out = s["audio_hours_out"] * 3600
    facts = [
        _fact("rows in", s["rows_in"]),
        _fact("samples out", s["samples_out"]),
        _fact("errors", s["errors"]),
        _fact("not done", s["rows_missing"]),
        _fact("audio in", _fmt_hours(s["audio_hours_in"])),
        _fact("audio out", _fmt_hours(s["audio_hours_out"])),
        _fact("wall time", f"{_fmt_seconds(wall)} / {s['runs']} run{'s' if s['runs'] != 1 else ''}"),
        _fact("throughput", f"{seconds_out / wall:.1f}× realtime" if wall > 0 else "n/a"),
        _fact("shards", f"{len(inspection['shards'])} ({sum(x['bytes'] for x in inspection['shards']) / 1e6:.1f} MB)"),
    ]
    command = recorded.get("command") or inspection.get("last_run", {}).get("command")
    command_text = shlex.join(str(c) for c in command) if isinstance(command, list) else (command or "n/a")
    versions = recorded.get("versions") or s.get("versions") or {}
    rows = [
        ("manifest", f"{job.get('manifest', {}).get('path')} ({job.get('manifest', {}).get('rows')} rows)"),
        ("options", ", ".join(f"{k}={v}" for k, v in sorted((job.get("options") or {}).items())) or "none"),
        ("command (last run)", command_text),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
    ]
    if recorded.get("throughput_audio_s_per_s") is not None:
        rows.append(("last run", f"{_fmt_seconds(recorded.get('wall_seconds', 0.0))}, {recorded['throughput_audio_s_per_s']:.1f} s of audio per second"))
    if inspection.get("leftover_temp_files"):
        rows.append(("leftovers", f"{len(inspection['leftover_temp_files'])} temporary file(s) of an interrupted run (removed by the next run)"))
    if s.get("duplicates"):
        rows.append(("DUPLICATE ids", ", ".join(map(str, s["duplicates"][:10]))))
    table = "".join(f"<tr><th>{escape(k)}</th><td class=mono>{escape(str(v))}</td></tr>" for k, v in rows)
    return f'<section id="summary"><h2>Job summary</h2><div class="facts">{"".join(facts)}</div><table style="margin-top:14px">{table}</table></section>'


def _errors_section(content) -> str:
    groups = content.errors
    if not groups:
        return '<section id="errors"><h2>Errors</h2><p>No error rows.</p></section>'
    total = sum(g.count for g in groups)
    rows = "".join(
        f"<tr><td class=num>{g.count}</td><td>{escape(g.stage)}</td><td><b>{escape(g.error)}</b>"
        f'<div class="mono" style="color:var(--muted)">{escape(g.example_message[:300])}</div></td>'
        f'<td class="mono">{"<br>".join(escape(str(i)) for i in g.example_ids)}</td></tr>'
        for g in groups
    )
    return (
        f'<section id="errors"><h2>Errors: {total} rows in {len(groups)} group{"s" if len(groups) != 1 else ""}</h2>'
        f"<table><tr><th>rows</th><th>stage</th><th>error (example message)</th><th>example ids</th></tr>{rows}</table></section>"
    )


def _figures(title: str, anchor: str, figures, empty: str) -> str:
    if not figures:
        return f'<section id="{anchor}"><h2>{escape(title)}</h2><p>{escape(empty)}</p></section>' if empty else ""
    body = "".join(
        f'<figure><img src="{escape(f.name)}" alt="{escape(f.title)}"><figcaption><b>{escape(f.title)}</b>: {escape(f.caption)}</figcaption></figure>'
        for f in figures
    )
    return f'<section id="{anchor}"><h2>{escape(title)}</h2><div class="figs">{body}</div></section>'


SAMPLE_TITLES = {
    "samples": "Listen: randomly sampled outputs",
    "before_after": "Before / after: source and upsampled output",
    "synthesis": "Source, prompt and output",
}


def _card_html(card) -> str:
    meta = " · ".join(f"{escape(k)}: {escape(str(v))}" for k, v in card.fields.items() if k != "text")
    text = f'<div class="text">“{escape(str(card.fields["text"]))}”</div>' if card.fields.get("text") else ""
    players = "".join(
        f'<div class="player"><div class="label">{escape(p.label)} · {p.seconds:.2f} s</div>'
        f'<audio controls preload="metadata" src="{escape(p.asset)}" title="{escape(p.origin)}"></audio></div>'
        for p in card.players
    )
    spectrogram = f'<img src="{escape(card.spectrogram)}" alt="spectrogram of {escape(card.sample_id)}">' if card.spectrogram else ""
    note = f'<div class="note">{escape(card.note)}</div>' if card.note else ""
    return f'<div class="card"><h3>{escape(card.sample_id)}</h3><div class="meta">{meta}</div>{text}<div class="players">{players}</div>{note}{spectrogram}</div>'


def _scores_section(content) -> str:
    if not content.score_figures:
        return ""
    from pipeline.report.scores import HIGHER_IS_WORSE, LABELS

    figures = _figures("Quality scores", "scores", content.score_figures, "")
    unscored = ", ".join(f"{escape(c)} {n}" for c, n in content.unscored.items())
    parts = [figures.removesuffix("</section>")]
    if unscored:
        parts.append(f'<p class="sub" style="color:var(--muted)">rows without a value (not scored, e.g. no reference voice or no text): {unscored}</p>')
    wide = "" if content.kind == "samples" else " wide"
    for column, cards in content.worst.items():
        if not cards:
            continue
        end = "highest" if column in HIGHER_IS_WORSE else "lowest"
        parts.append(f'<h3 id="worst-{escape(column)}">Worst by {escape(LABELS.get(column, column))} ({end} first)</h3>')
        parts.append(f'<div class="cards{wide}">{"".join(_card_html(c) for c in cards)}</div>')
    return "".join(parts) + "</section>"


def _cards_section(content) -> str:
    if not content.cards:
        return ""
    cards = [_card_html(card) for card in content.cards]
    how = f"{len(content.cards)} samples drawn at random (seed {content.seed}) from the index"
    return f'<section id="samples"><h2>{SAMPLE_TITLES[content.kind]}</h2><p class="sub" style="color:var(--muted);margin-top:-6px">{how}</p><div class="cards{"" if content.kind == "samples" else " wide"}">{"".join(cards)}</div></section>'


def render(content, marker: str) -> str:
    """The whole page for a `ReportContent`."""
    inspection = content.inspection
    summary = inspection["summary"]
    state, banner = _state(summary)
    job = inspection["job"]
    title = f"{job.get('job')} · {inspection['root']}"
    generated = dt.datetime.fromtimestamp(content.generated, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    features = _figures("Features", "features", content.feature_figures, "")
    parts = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="{marker}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f'<header><h1>hsp report: <span class="mono" style="font-size:20px">{escape(str(job.get("job")))}</span> job</h1>'
        f'<div class="sub">{escape(str(inspection["root"]))} · generated {generated}</div></header><main>',
        f'<div class="banner {state}" id="state">{escape(banner)}</div>',
        _summary_section(content),
        _errors_section(content),
        _figures("Distributions", "distributions", content.figures, "The index has no columns to plot."),
        features,
        _scores_section(content),
        _cards_section(content),
        f"</main><footer>hsp report · seed {content.seed} · distributions from index.parquet (all rows)"
        f"{f' · features from {content.stats_rows} sampled rows' if content.feature_figures else ''}"
        " · hsp inspect OUT gives the same numbers as text</footer></body></html>",
    ]
    return "\n".join(parts)
