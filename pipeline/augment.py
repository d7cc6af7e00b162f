"""`hsp augment`: K synthetic variants per ASR utterance, voices drawn from other speakers.

`augment_plan` expands a manifest (id, audio, text, speaker) into synthesis rows, written once to
OUT/plan.parquet (`write_plan`: a re-run must find the same plan there); the synthesis stages
(pipeline/synthesize.py) run the plan as the `augment` job. The prompt pool (another manifest, or the manifest
itself) is sorted by id and grouped by speaker once, so a row's candidates (every prompt of
another speaker, never the row itself) are the pool minus one speaker's block, addressed by
rank without being built: O(n log n) work overall instead of a pass over the pool per row.

Two prompt rules, both deterministic (seeded by sha256 of --seed, the row id and the mode):
- ``uniform-row`` (default): variant k takes the k-th of a uniformly random order of the
  candidates. Every prompt utterance is equally likely, so speakers with many utterances supply
  most voices. Plan version 2 draws the order lazily (`distinct_draws`): O(K) per row. Plan
  version 1 (plans written before versions were recorded) permuted every candidate, O(pool) per
  row; it is kept only so that an existing output folder's plan.parquet still matches on resume.
- ``uniform-speaker``: variant k takes the k-th of a random order of the other speakers (each
  equally likely), then a random utterance of that speaker. O(K) per row; the same in every version.
In both, variant k of a row does not depend on K (``__vc0`` of K=1 is ``__vc0`` of K=3).
Variants cycle when there are fewer candidates (speakers) than K. A row without any candidate
gets a null prompt, which the job records as an error row. The plan's version is stored in
plan.parquet's schema metadata (`PLAN_VERSION_KEY`); `plan_version_of` reads it back.
"""

from __future__ import annotations

import os
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.engine.job import Job, JobSpec
from pipeline.errors import ConfigError, InputError
from pipeline.io.manifest import Column
from pipeline.io.uri import is_uri
from pipeline.stages.synthesis_params import derive_seed
from pipeline.synthesize import PLAN_COLUMNS, SYNTHESIZE_INDEX_FIELDS, SynthesizeConfig, synthesize_job

AUGMENT_COLUMNS = (
    Column("text", "string", required=True, doc="transcript, carried over to every variant"),
    Column("speaker", "string", required=True, doc="prompts are drawn from other speakers"),
)
PLAN_FILE = "plan.parquet"
PROMPT_SAMPLING = ("uniform-row", "uniform-speaker")
PLAN_VERSION = 2  # what new plans are written with
PLAN_VERSIONS = (1, 2)  # what this code can rebuild (1: the legacy uniform-row permutation)
PLAN_VERSION_KEY = b"hsp_plan_version"
AUGMENT_MODES = {"vc": ("vc",), "tts": ("tts",), "both": ("vc", "tts")}
PLAN_SCHEMA = pa.schema(
    [
        ("id", pa.string()), ("mode", pa.string()), ("audio", pa.string()), ("text", pa.string()), ("language", pa.string()),
        ("speaker", pa.string()), ("source_speaker", pa.string()), ("source_id", pa.string()), ("prompt_id", pa.string()),
        ("target_audio", pa.string()), ("prompt_audio", pa.string()), ("variant", pa.int64()), ("seed", pa.int64()),
    ]
)  # fmt: skip


@dataclass(frozen=True)
class AugmentOptions:
    """How many variants of which mode, the seed, and the prompt rule (see the module docstring)."""

    variants: int = 1
    mode: str = "vc"  # vc | tts | both
    seed: int = 0
    prompt_sampling: str = "uniform-row"  # uniform-row | uniform-speaker
    plan_version: int = PLAN_VERSION  # 1 only to rebuild a plan written before versions were recorded

    def __post_init__(self) -> None:
        if self.plan_version not in PLAN_VERSIONS:
            raise ConfigError(f"plan version {self.plan_version} is not one this version of hierspeech-pipeline can build "
                              f"(known: {', '.join(map(str, PLAN_VERSIONS))}); upgrade, or write to a new output folder")
        if self.mode not in AUGMENT_MODES:
            raise ConfigError(f"augment mode must be one of {sorted(AUGMENT_MODES)}, got {self.mode!r}")
        if self.prompt_sampling not in PROMPT_SAMPLING:
            raise ConfigError(f"prompt sampling must be one of {', '.join(PROMPT_SAMPLING)}, got {self.prompt_sampling!r}")
        if self.variants < 1:
            raise ConfigError(f"variants must be >= 1, got {self.variants}")


class PromptPool:
    """Prompts sorted by id (ties keep input order), indexed by id and by speaker."""

    def __init__(self, ids: list[str], audio: list[str], speakers: list[Hashable]):
        order = sorted(range(len(ids)), key=ids.__getitem__)
        self.ids = [ids[i] for i in order]
        self.audio = [audio[i] for i in order]
        self.speakers = [speakers[i] for i in order]
        # speaker -> sorted positions; an unknown (None) speaker is never excluded by the row
        # rule, and counts as a speaker of its own per prompt in the speaker rule
        by_speaker: dict[Hashable, list[int]] = {}
        self.groups: list[np.ndarray] = []  # speaker-rule groups, in order of first appearance
        self.group_of = np.empty(len(self.ids), dtype=np.int64)
        group_index: dict[Hashable, int] = {}
        for position, speaker in enumerate(self.speakers):
            if speaker is None:
                self.group_of[position] = len(self.groups)
                self.groups.append(np.array([position]))
                continue
            by_speaker.setdefault(speaker, []).append(position)
            if speaker not in group_index:
                group_index[speaker] = len(self.groups)
                self.groups.append(np.empty(0, dtype=np.int64))  # filled below
            self.group_of[position] = group_index[speaker]
        self.speaker_positions = {s: np.asarray(p, dtype=np.int64) for s, p in by_speaker.items()}
        for speaker, index in group_index.items():
            self.groups[index] = self.speaker_positions[speaker]
        self.speaker_group = group_index
        self.group_list = self.group_of.tolist()
        self._rank_offsets = {s: p - np.arange(p.shape[0]) for s, p in self.speaker_positions.items()}
        self._empty = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def id_positions(self, source_id: str) -> range:
        return range(bisect_left(self.ids, source_id), bisect_right(self.ids, source_id))

    def excluded(self, source_id: str, speaker: Hashable | None) -> tuple[np.ndarray, np.ndarray]:
        """Sorted positions a row may not use (its speaker's, its own id's) and their rank offsets."""
        same_id = self.id_positions(source_id)
        own = self.speaker_positions.get(speaker, self._empty) if speaker is not None else self._empty
        if all(speaker is not None and self.speakers[p] == speaker for p in same_id):
            offsets = self._rank_offsets.get(speaker, self._empty) if own.shape[0] else self._empty
            return own, offsets
        excluded = np.union1d(own, np.arange(same_id.start, same_id.stop, dtype=np.int64))
        return excluded, excluded - np.arange(excluded.shape[0])


def positions_of_ranks(ranks: np.ndarray, rank_offsets: np.ndarray) -> np.ndarray:
    """Pool positions of the `ranks`-th allowed prompts, given the excluded positions' rank offsets.

    An excluded position e_i has e_i - i allowed positions before it; the r-th allowed position
    is r plus the number of excluded positions with at most r allowed ones before them.
    """
    return ranks + np.searchsorted(rank_offsets, ranks, side="right")


def distinct_draws(rng: np.random.Generator, n: int) -> Iterator[int]:
    """Distinct values of range(n) in uniformly random order, one at a time (lazy Fisher-Yates).

    Lazy so that a caller can interleave other draws: the k-th value never depends on how many
    are taken after it.
    """
    swapped: dict[int, int] = {}
    for i in range(n):
        j = int(rng.integers(i, n))
        yield swapped.get(j, j)
        swapped[j] = swapped.get(i, i)


def skip_excluded(rank: int, excluded: list[int]) -> int:
    """The `rank`-th value not in the sorted list `excluded` (few entries: a linear walk)."""
    for value in excluded:
        if value > rank:
            break
        rank += 1
    return rank


def _uniform_row(pool: PromptPool, source_id: str, speaker: Any, mode: str, options: AugmentOptions) -> list[int | None]:
    excluded, offsets = pool.excluded(source_id, speaker)
    candidates = len(pool) - excluded.shape[0]
    if candidates == 0:
        return [None] * options.variants
    rng = np.random.default_rng(derive_seed(options.seed, source_id, mode))
    wanted = min(options.variants, candidates)
    if options.plan_version == 1:  # legacy: a permutation of every candidate, O(pool) per row
        ranks = rng.permutation(candidates)[:wanted]
    else:
        draws = distinct_draws(rng, candidates)
        ranks = np.fromiter((next(draws) for _ in range(wanted)), dtype=np.int64, count=wanted)
    picked = positions_of_ranks(ranks, offsets).tolist()
    return [picked[k % len(picked)] for k in range(options.variants)]


def _uniform_speaker(pool: PromptPool, source_id: str, speaker: Any, mode: str, options: AugmentOptions) -> list[int | None]:
    same_id = pool.id_positions(source_id)
    banned = {pool.speaker_group[speaker]} if speaker is not None and speaker in pool.speaker_group else set()
    trimmed: dict[int, np.ndarray] = {}  # groups holding the row's own id: their other prompts
    for group in {pool.group_list[p] for p in same_id} - banned:
        members = pool.groups[group]
        rest = members[(members < same_id.start) | (members >= same_id.stop)]
        if rest.shape[0]:
            trimmed[group] = rest
        else:
            banned.add(group)
    allowed = len(pool.groups) - len(banned)
    if allowed == 0:
        return [None] * options.variants
    rng = np.random.default_rng(derive_seed(options.seed, source_id, mode, "uniform-speaker"))
    banned_sorted = sorted(banned)
    speakers = distinct_draws(rng, allowed)
    chosen: list[int] = []
    picks = []
    for k in range(options.variants):
        # speaker, then its utterance, variant by variant: variant k is the same for any K > k
        group = skip_excluded(next(speakers), banned_sorted) if k < allowed else chosen[k % allowed]
        chosen.append(group)
        members = trimmed.get(group, pool.groups[group])
        picks.append(int(members[int(rng.integers(members.shape[0]))]))
    return picks


PICKERS = {"uniform-row": _uniform_row, "uniform-speaker": _uniform_speaker}


class PathResolver:
    """`resolve_path` with memory: each folder is resolved once, then one lstat per file.

    Gives exactly `resolve_path(path, base)` (pathlib's resolve: symlinks followed, missing
    files kept as written); empty paths and a missing base pass through, as before.
    """

    def __init__(self) -> None:
        self._files: dict[tuple[str, Path], str] = {}
        self._folders: dict[tuple[str, Path], str] = {}

    def __call__(self, path: str | None, base: Path | None) -> str | None:
        if not path or base is None:
            return path
        key = (path, base)
        found = self._files.get(key)
        if found is None:
            found = self._files[key] = self._resolve(path, base)
        return found

    def _resolve(self, path: str, base: Path) -> str:
        from pipeline.io.manifest import resolve_path

        folder, name = os.path.split(path)
        if name in ("", ".", "..") or is_uri(path) or path.startswith("file://") or os.path.isabs(path):
            return resolve_path(path, base)
        real_folder = self._folders.get((folder, base))
        if real_folder is None:
            real_folder = self._folders[(folder, base)] = str((base / folder).resolve())
        candidate = os.path.join(real_folder, name)
        return resolve_path(path, base) if os.path.islink(candidate) else candidate


def _column(table: pa.Table, name: str) -> list[Any]:
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def augment_plan(manifest: pa.Table, base_dir: Path | None, options: AugmentOptions, prompts: pa.Table | None = None, prompts_dir: Path | None = None) -> pa.Table:
    """Expand an ASR manifest (id, audio, text, speaker) into synthesis rows; deterministic.

    For each source row and mode (vc, tts or both), K variants with ids ``<id>__<mode><k>``; the
    prompt of each comes from `options.prompt_sampling` over the pool (`prompts`, relative paths
    against `prompts_dir`, or the manifest itself). A row's synthesis seed is
    derive_seed(seed, output id).
    """
    if "audio" not in manifest.column_names or "id" not in manifest.column_names:
        raise InputError(f"augment needs columns 'id' and 'audio'; the manifest has {manifest.column_names}")
    absolute = PathResolver()
    source = prompts if prompts is not None else manifest
    pool_base = prompts_dir if prompts is not None else base_dir
    entries = [(str(i), a, s) for i, a, s in zip(_column(source, "id"), _column(source, "audio"), _column(source, "speaker"), strict=True) if a]
    pool = PromptPool([e[0] for e in entries], [absolute(e[1], pool_base) for e in entries], [e[2] for e in entries])

    pick = PICKERS[options.prompt_sampling]
    modes = AUGMENT_MODES[options.mode]
    columns: dict[str, list[Any]] = {name: [] for name in PLAN_SCHEMA.names}
    rows = zip(_column(manifest, "id"), _column(manifest, "audio"), _column(manifest, "text"), _column(manifest, "language"), _column(manifest, "speaker"), strict=True)
    for raw_id, audio, text, language, speaker in rows:
        source_id = str(raw_id)
        audio = absolute(audio, base_dir)
        for mode in modes:
            for k, position in enumerate(pick(pool, source_id, speaker, mode, options)):
                out_id = f"{source_id}__{mode}{k}"
                prompt_audio = pool.audio[position] if position is not None else None
                columns["id"].append(out_id)
                columns["mode"].append(mode)
                columns["audio"].append(audio)
                columns["text"].append(text)
                columns["language"].append(language)
                columns["speaker"].append(pool.speakers[position] if position is not None else None)
                columns["source_speaker"].append(speaker)
                columns["source_id"].append(source_id)
                columns["prompt_id"].append(pool.ids[position] if position is not None else None)
                columns["target_audio"].append(prompt_audio if mode == "vc" else None)
                columns["prompt_audio"].append(prompt_audio if mode == "tts" else None)
                columns["variant"].append(k)
                columns["seed"].append(derive_seed(options.seed, out_id))
    schema = PLAN_SCHEMA.with_metadata({PLAN_VERSION_KEY: str(options.plan_version).encode()})
    return pa.table({name: pa.array(values, type=PLAN_SCHEMA.field(name).type) for name, values in columns.items()}, schema=schema)


def plan_for_output(output: str | Path, build: Callable[[int], pa.Table]) -> tuple[Path, pa.Table, int, bool]:
    """The plan `hsp augment` runs in `output`: (path, plan, version, kept an existing one).

    A plan.parquet already there is rebuilt by `build(version)` with the version it was written
    with (1 when it records none) and must be equal, so a resume runs the rows the first run
    planned; another plan there is a conflict. Otherwise `build(PLAN_VERSION)` is written.
    """
    import pyarrow.parquet as pq

    from pipeline.io.output import OutputConflictError

    path = Path(output) / PLAN_FILE
    if path.exists():
        version = plan_version_of(pq.read_schema(path))
        plan = build(version)
        if not pq.read_table(path).equals(plan):
            raise OutputConflictError(f"{path} holds another plan (other manifest, prompts, --variants, --mode, --prompt-sampling "
                                      "or --seed); re-run with the original settings to resume, or use a new output folder")
        return path, plan, version, True
    plan = build(PLAN_VERSION)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{PLAN_FILE}.tmp")
    pq.write_table(plan, temporary)
    temporary.replace(path)  # never a half-written plan under the name a resume reads
    return path, plan, PLAN_VERSION, False


def plan_version_of(plan: pa.Table | pa.Schema) -> int:
    """The version a plan was written with (1: written before versions were recorded)."""
    metadata = (plan.schema if isinstance(plan, pa.Table) else plan).metadata or {}
    raw = metadata.get(PLAN_VERSION_KEY)
    if raw is None:
        return 1
    try:
        return int(raw)
    except ValueError as exc:
        raise InputError(f"plan.parquet has an unreadable plan version {raw!r}; write to a new output folder") from exc


def prompt_speaker_summary(plan: pa.Table, top: int = 10) -> dict[str, Any]:
    """The summary's view of the plan's voices: how many speakers, the most and least used, the full histogram."""
    histogram = prompt_speaker_histogram(plan)
    counts = list(histogram.values())
    return {
        "speakers": len(histogram),
        "rows_with_prompt": sum(counts),
        "most_used": list(histogram.items())[:top],
        "max_rows_per_speaker": max(counts, default=0),
        "min_rows_per_speaker": min(counts, default=0),
        "histogram": histogram,
    }


def prompt_speaker_histogram(plan: pa.Table) -> dict[str, int]:
    """How many plan rows take their voice from each prompt speaker, most used first (for the summary).

    Rows without a prompt (no candidate) are not counted; an unknown speaker counts as "".
    """
    import pyarrow.compute as pc

    with_prompt = plan.filter(pc.is_valid(plan.column("prompt_id")))
    counts = pc.value_counts(pc.fill_null(with_prompt.column("speaker"), ""))
    pairs = [(str(v["values"]), int(v["counts"])) for v in counts.to_pylist()]
    return dict(sorted(pairs, key=lambda p: (-p[1], p[0])))


# -- the job ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AugmentConfig:
    """The plan (variants, modes, prompt pool, seed) and the synthesis that runs it.

    `synthesis` has no row mode (each plan row has one) and runs the modes of `plan.mode`;
    `plan.seed` seeds the prompt choice, `synthesis.defaults.seed` the rows (the CLI gives both --seed).
    """

    synthesis: SynthesizeConfig
    plan: AugmentOptions = field(default_factory=AugmentOptions)
    prompts: str | None = None  # prompt pool manifest (id, audio, speaker); None: the manifest itself

    def __post_init__(self) -> None:
        if self.synthesis.mode is not None or tuple(self.synthesis.modes) != AUGMENT_MODES[self.plan.mode]:
            raise ConfigError(f"augment's synthesis runs plan rows: mode None and modes {AUGMENT_MODES[self.plan.mode]}, "
                              f"got mode {self.synthesis.mode!r} and modes {self.synthesis.modes}")


def augment_job(config: AugmentConfig) -> Job:
    """The synthesis stages over a plan (its rows carry their mode): job `augment`."""
    job = synthesize_job(config.synthesis, spec=AUGMENT, columns=PLAN_COLUMNS)
    job.summary_extra = lambda out_root: augment_summary(out_root, config.plan.prompt_sampling)
    return job


def _local_input(path: str, what: str) -> Path:
    """The local file a manifest path or ``file://`` URI (percent-encoding decoded) names.

    The plan resolves each row's relative audio path against the manifest's own folder, so it needs
    that folder on this machine; a remote manifest is refused with what to do.
    """
    from pipeline.io.uri import is_uri, local_path

    if is_uri(path):
        raise InputError(f"augment reads its {what} from a local path or file:// URI, not {path}; copy it here "
                         "(audio paths inside it may stay remote URIs)")
    return Path(local_path(path))


def write_plan(config: AugmentConfig, manifest_path: str, out_root: str) -> str:
    """Validate the manifest, build the plan and write it to OUT/plan.parquet once; returns its path.

    A re-run finds its own plan there, rebuilt with the plan version it was written with, and
    goes on; another plan there (other manifest, prompts, variants, mode, prompt rule or seed) is
    refused, so a resume never mixes two plans (see `plan_for_output`).
    """
    from pipeline.io.manifest import ManifestError, read_manifest, validate_table, with_base_columns

    source = _local_input(str(manifest_path), "manifest")
    table = read_manifest(str(source))
    report = validate_table(table, with_base_columns(AUGMENT_COLUMNS), base_dir=str(source.resolve().parent), check_files=False)
    if not report.ok:
        raise ManifestError(str(manifest_path), report)
    prompts_source = _local_input(config.prompts, "--prompts manifest") if config.prompts else None
    prompts = read_manifest(str(prompts_source)) if prompts_source else None
    prompts_dir = prompts_source.resolve().parent if prompts_source else None

    def build(version: int) -> pa.Table:
        return augment_plan(table, source.resolve().parent, replace(config.plan, plan_version=version), prompts, prompts_dir)

    plan_path, plan, version, kept = plan_for_output(out_root, build)
    print(f"{'kept' if kept else 'wrote'} {plan_path} (plan version {version}): {plan.num_rows} rows ({config.plan.variants} "
          f"variant(s) x {config.plan.mode} for {table.num_rows} utterances, {config.plan.prompt_sampling} prompts)", file=sys.stderr)
    return str(plan_path)


def augment_summary(out_root: str, prompt_sampling: str) -> dict[str, Any]:
    """What augment adds to summary.json: the prompt rule, the plan version, the prompt-speaker histogram."""
    import pyarrow.parquet as pq

    plan = pq.read_table(Path(out_root) / PLAN_FILE)
    return {"prompt_sampling": prompt_sampling, "plan_version": plan_version_of(plan), "prompt_speakers": prompt_speaker_summary(plan)}


AUGMENT = JobSpec(
    name="augment",
    command=("augment",),
    config=AugmentConfig,
    build=augment_job,
    columns=AUGMENT_COLUMNS,
    index_fields=tuple(SYNTHESIZE_INDEX_FIELDS),
    input_manifest=write_plan,
)
