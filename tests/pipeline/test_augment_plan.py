"""The augment plan: today's rule byte-identical to the old O(rows x pool) code, and the speaker rule.

`legacy_augment_plan` below is a verbatim copy of `augment_plan` as it was before the pool was
grouped by speaker (commit 4792d35), kept here as the oracle for `uniform-row`.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.augment import (
    PLAN_VERSION,
    AugmentOptions,
    augment_plan,
    distinct_draws,
    plan_version_of,
    positions_of_ranks,
    prompt_speaker_histogram,
)
from pipeline.stages.synthesis_params import derive_seed


def legacy_augment_plan(manifest: pa.Table, base_dir: Path | None, options: AugmentOptions, prompts: pa.Table | None = None, prompts_dir: Path | None = None) -> pa.Table:
    from pipeline.io.manifest import resolve_path

    modes = {"vc": ["vc"], "tts": ["tts"], "both": ["vc", "tts"]}[options.mode]
    rows = manifest.to_pylist()
    pool_rows = prompts.to_pylist() if prompts is not None else rows
    pool_base = prompts_dir if prompts is not None else base_dir

    def absolute(path: str | None, base: Path | None) -> str | None:
        return resolve_path(path, base) if path and base is not None else path

    pool = sorted(
        ((str(r["id"]), absolute(r["audio"], pool_base), r.get("speaker")) for r in pool_rows if r.get("audio")),
        key=lambda p: p[0],
    )
    out: list[dict[str, Any]] = []
    for row in rows:
        source_id, speaker = str(row["id"]), row.get("speaker")
        candidates = [p for p in pool if p[0] != source_id and (speaker is None or p[2] != speaker)]
        for mode in modes:
            order: list[int] = []
            if candidates:
                rng = np.random.default_rng(derive_seed(options.seed, source_id, mode))
                order = [int(i) for i in rng.permutation(len(candidates))]
            for k in range(options.variants):
                prompt = candidates[order[k % len(order)]] if order else (None, None, None)
                out_id = f"{source_id}__{mode}{k}"
                out.append(
                    {
                        "id": out_id,
                        "mode": mode,
                        "audio": absolute(row["audio"], base_dir),
                        "text": row.get("text"),
                        "language": row.get("language"),
                        "speaker": prompt[2],
                        "source_speaker": speaker,
                        "source_id": source_id,
                        "prompt_id": prompt[0],
                        "target_audio": prompt[1] if mode == "vc" else None,
                        "prompt_audio": prompt[1] if mode == "tts" else None,
                        "variant": k,
                        "seed": derive_seed(options.seed, out_id),
                    }
                )
    schema = pa.schema(
        [
            ("id", pa.string()), ("mode", pa.string()), ("audio", pa.string()), ("text", pa.string()), ("language", pa.string()),
            ("speaker", pa.string()), ("source_speaker", pa.string()), ("source_id", pa.string()), ("prompt_id", pa.string()),
            ("target_audio", pa.string()), ("prompt_audio", pa.string()), ("variant", pa.int64()), ("seed", pa.int64()),
        ]
    )  # fmt: skip
    return pa.Table.from_pylist(out, schema=schema)


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def random_manifest(rng: np.random.Generator, rows: int, speakers: int, *, prefix: str = "u", none_speakers: bool = False, missing_audio: bool = False) -> pa.Table:
    ids = [f"{prefix}{int(i):03d}" for i in rng.choice(10 * rows, size=rows, replace=False)]
    if rng.random() < 0.5:  # duplicate ids happen in user manifests; ties must keep input order
        ids[-1] = ids[0]
    speaker = [f"s{int(s)}" for s in rng.integers(0, speakers, size=rows)]
    if none_speakers:
        speaker = [None if rng.random() < 0.2 else s for s in speaker]
    audio = [f"audio/{i}.wav" if not (missing_audio and rng.random() < 0.15) else None for i in ids]
    language = [None if rng.random() < 0.5 else "en" for _ in ids]
    return pa.table({"id": ids, "audio": audio, "text": [f"text of {i}" for i in ids], "speaker": speaker, "language": language})


@pytest.mark.parametrize("case", range(24))
def test_plan_version_1_equals_the_old_algorithm_byte_for_byte(case: int, tmp_path: Path) -> None:
    """Random small manifests and pools (duplicate ids, unknown speakers, rows without audio,
    more variants than candidates, a one-speaker pool): the grouped plan at version 1 writes the
    same rows as the pre-grouping code, so an existing output folder's plan still matches."""
    rng = np.random.default_rng(case)
    manifest = random_manifest(rng, int(rng.integers(1, 40)), int(rng.integers(1, 6)), none_speakers=case % 3 == 0)
    prompts = prompts_dir = None
    if case % 2:
        # a separate pool that shares some ids (other speakers) and has gaps
        prompts = random_manifest(rng, int(rng.integers(1, 30)), int(rng.integers(1, 4)), prefix="u" if case % 4 == 1 else "p", none_speakers=True, missing_audio=True)
        prompts_dir = tmp_path / "prompts"
    options = AugmentOptions(variants=int(rng.integers(1, 6)), mode=("vc", "tts", "both")[case % 3], seed=int(rng.integers(0, 2**31)), plan_version=1)
    old = legacy_augment_plan(manifest, tmp_path, options, prompts, prompts_dir)
    new = augment_plan(manifest, tmp_path, options, prompts, prompts_dir)
    assert plan_version_of(old) == plan_version_of(new) == 1  # no version recorded: version 1
    new = new.replace_schema_metadata(None)
    assert new.schema == old.schema
    assert new.equals(old), f"first difference at row {next(i for i, (a, b) in enumerate(zip(new.to_pylist(), old.to_pylist(), strict=True)) if a != b)}"
    assert parquet_bytes(new) == parquet_bytes(old)


def test_plan_version_2_draws_uniformly_without_permuting_the_pool() -> None:
    """Version 2 (the default) records its version, differs from version 1 (another draw), keeps
    every rule (other speakers only, distinct prompts per row), and picks each candidate about
    equally often: 120 rows x 4 variants, 80 candidates per row."""
    manifest = pa.table({"id": [f"u{i:03d}" for i in range(120)], "audio": [f"{i}.wav" for i in range(120)],
                         "text": ["t"] * 120, "speaker": [f"s{i % 3}" for i in range(120)]})
    v2 = augment_plan(manifest, None, AugmentOptions(variants=4, seed=9))
    v1 = augment_plan(manifest, None, AugmentOptions(variants=4, seed=9, plan_version=1))
    assert plan_version_of(v2) == PLAN_VERSION == 2 and plan_version_of(v1) == 1
    assert v2.column("prompt_id").to_pylist() != v1.column("prompt_id").to_pylist()
    rows = v2.to_pylist()
    assert all(r["speaker"] != r["source_speaker"] for r in rows)
    by_source: dict[str, list[str]] = {}
    for r in rows:
        by_source.setdefault(r["source_id"], []).append(r["prompt_id"])
    assert all(len(set(p)) == 4 for p in by_source.values())
    uses = np.array(list(Counter(r["prompt_id"] for r in rows).values()))
    assert uses.sum() == 480 and len(uses) >= 114 and uses.max() <= 12  # ~Poisson(4): P(unused) = 2%, no favourites
    with pytest.raises(ValueError, match="plan version 3"):
        AugmentOptions(plan_version=3)


def test_paths_resolve_exactly_as_before(tmp_path: Path) -> None:
    """Symlinked folders and files, dot segments, absolute paths and URIs: the same strings as
    pathlib's resolve gave per row."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "target.wav").write_bytes(b"")
    (tmp_path / "audio").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "link.wav").symlink_to(tmp_path / "real" / "target.wav")
    paths = ["audio/a.wav", "audio/link.wav", "./audio/../real/b.wav", "c.wav", "audio//d.wav", str(tmp_path / "audio" / "e.wav"), "s3://bucket/f.wav", "file:///x/g.wav", "sub/dir/h.wav"]
    manifest = pa.table({"id": [f"u{i}" for i in range(len(paths))], "audio": paths, "speaker": [f"s{i % 3}" for i in range(len(paths))]})
    for options in (AugmentOptions(variants=2, mode="both", plan_version=1), AugmentOptions(variants=2, mode="both", seed=3, plan_version=1)):
        new = augment_plan(manifest, tmp_path, options)
        assert new.equals(legacy_augment_plan(manifest, tmp_path, options))
    audio = dict(zip(new.column("source_id").to_pylist(), new.column("audio").to_pylist(), strict=True))
    assert audio["u0"] == str(tmp_path / "real" / "a.wav") and audio["u1"] == str(tmp_path / "real" / "target.wav")


def test_uniform_row_without_base_dir_and_with_no_candidates() -> None:
    """Relative paths stay as given without a base dir; a one-speaker corpus gets null prompts, as before."""
    manifest = pa.table({"id": ["a", "b"], "audio": ["a.wav", "b.wav"], "speaker": ["x", "x"], "text": ["t", "t"]})
    options = AugmentOptions(variants=2, mode="both")
    new = augment_plan(manifest, None, options)
    assert new.equals(legacy_augment_plan(manifest, None, options))
    assert new.column("prompt_id").null_count == new.num_rows == 8
    assert prompt_speaker_histogram(new) == {}


def test_rank_addressing_matches_building_the_candidate_list() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        size = int(rng.integers(1, 60))
        excluded = np.sort(rng.choice(size, size=int(rng.integers(0, size)), replace=False))
        allowed = [p for p in range(size) if p not in set(excluded.tolist())]
        ranks = np.arange(len(allowed))
        assert positions_of_ranks(ranks, excluded - np.arange(excluded.shape[0])).tolist() == allowed


def test_distinct_draws_are_uniform_over_ordered_draws() -> None:
    """Every value of range(n) is equally likely in every slot (partial Fisher-Yates, no bias)."""
    rng = np.random.default_rng(0)
    n, m, trials = 5, 3, 20000
    counts = np.zeros((m, n))
    assert sorted(distinct_draws(rng, n)) == list(range(n))
    for _ in range(trials):
        draws = distinct_draws(rng, n)
        draw = [next(draws) for _ in range(m)]
        assert len(set(draw)) == m
        counts[np.arange(m), draw] += 1
    share = counts / trials
    assert np.abs(share - 1 / n).max() < 0.015  # 1/n = 0.2; 4.7 sigma at 20000 trials


def skewed_corpus() -> tuple[pa.Table, pa.Table]:
    """500 sources of speaker 'src'; a pool where speaker A has 100 utterances and B, C, D one each."""
    manifest = pa.table({"id": [f"r{i:03d}" for i in range(500)], "audio": [f"r{i}.wav" for i in range(500)], "speaker": ["src"] * 500, "text": ["t"] * 500})
    pool_speakers = ["A"] * 100 + ["B", "C", "D"]
    prompts = pa.table({"id": [f"p{i:03d}" for i in range(103)], "audio": [f"p{i}.wav" for i in range(103)], "speaker": pool_speakers})
    return manifest, prompts


def test_uniform_speaker_balances_voices_where_uniform_row_does_not() -> None:
    manifest, prompts = skewed_corpus()
    by_row = prompt_speaker_histogram(augment_plan(manifest, None, AugmentOptions(seed=1), prompts, None))
    by_speaker_plan = augment_plan(manifest, None, AugmentOptions(seed=1, prompt_sampling="uniform-speaker"), prompts, None)
    by_speaker = prompt_speaker_histogram(by_speaker_plan)
    assert sum(by_row.values()) == sum(by_speaker.values()) == 500
    assert by_row["A"] / 500 > 0.9  # 100 of 103 utterances
    assert set(by_speaker) == {"A", "B", "C", "D"}
    assert all(0.18 < count / 500 < 0.32 for count in by_speaker.values()), by_speaker  # 1/4 each, > 3.5 sigma
    assert list(by_speaker.values()) == sorted(by_speaker.values(), reverse=True)
    # within speaker A the utterance is drawn uniformly: most of its 100 utterances get used
    used = {p for p, s in zip(by_speaker_plan.column("prompt_id").to_pylist(), by_speaker_plan.column("speaker").to_pylist(), strict=True) if s == "A"}
    assert len(used) > 50


def test_uniform_speaker_rules(tmp_path: Path) -> None:
    """Never the source's speaker nor its own id; distinct speakers across variants until they run
    out, then cycling; deterministic per seed; unknown speakers count as speakers of their own."""
    rng = np.random.default_rng(7)
    manifest = random_manifest(rng, 60, 6)
    options = AugmentOptions(variants=4, mode="both", seed=5, prompt_sampling="uniform-speaker")
    plan = augment_plan(manifest, tmp_path, options)
    assert plan.equals(augment_plan(manifest, tmp_path, options))
    assert not plan.equals(augment_plan(manifest, tmp_path, AugmentOptions(variants=4, mode="both", seed=6, prompt_sampling="uniform-speaker")))
    rows = plan.to_pylist()
    assert len(rows) == 60 * 4 * 2
    by_source: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        assert row["speaker"] != row["source_speaker"] and row["prompt_id"] != row["source_id"]
        assert (row["target_audio"] if row["mode"] == "vc" else row["prompt_audio"]) == str((tmp_path / f"audio/{row['prompt_id']}.wav").resolve())
        by_source.setdefault((row["id"].rsplit("__", 1)[0], row["mode"]), []).append(row)
    for variants in by_source.values():
        speakers = [v["speaker"] for v in variants]
        assert len(set(speakers)) == min(4, len(set(manifest.column("speaker").to_pylist())) - 1)
    # two other speakers only: variants 0, 1 differ, 2 and 3 repeat them in order
    small = pa.table({"id": ["a", "b", "c", "d"], "audio": ["a.wav", "b.wav", "c.wav", "d.wav"], "speaker": ["x", "y", "z", "z"]})
    first = augment_plan(small, None, options).to_pylist()[:4]
    assert [r["speaker"] for r in first[:2]] == [r["speaker"] for r in first[2:]] and first[0]["speaker"] != first[1]["speaker"]
    # a pool without speaker labels: every prompt is a voice of its own, never the row itself
    unlabeled = pa.table({"id": ["a", "b", "c"], "audio": ["a.wav", "b.wav", "c.wav"]})
    plan = augment_plan(unlabeled, None, AugmentOptions(variants=3, prompt_sampling="uniform-speaker"))
    for row in plan.to_pylist():
        assert row["prompt_id"] != row["source_id"] and row["speaker"] is None
    assert prompt_speaker_histogram(plan) == {"": 9}


def test_uniform_speaker_skips_a_speaker_whose_only_prompt_is_the_row_itself() -> None:
    """A separate pool holding the source id under another speaker: that utterance is never used,
    and a speaker left without prompts is not drawn."""
    manifest = pa.table({"id": ["a"], "audio": ["a.wav"], "speaker": ["x"]})
    prompts = pa.table({"id": ["a", "b", "c"], "audio": ["pa.wav", "pb.wav", "pc.wav"], "speaker": ["y", "z", "z"]})
    plan = augment_plan(manifest, None, AugmentOptions(variants=6, prompt_sampling="uniform-speaker"), prompts, None)
    assert set(plan.column("speaker").to_pylist()) == {"z"}
    assert set(plan.column("prompt_id").to_pylist()) <= {"b", "c"}


@pytest.mark.parametrize("rule", ["uniform-row", "uniform-speaker"])
def test_a_variant_does_not_depend_on_how_many_are_asked(rule: str) -> None:
    """Raising --variants adds rows and keeps the existing ones (variant 0 of K=1 is variant 0 of K=4)."""
    manifest = random_manifest(np.random.default_rng(11), 30, 5)
    one = augment_plan(manifest, None, AugmentOptions(variants=1, mode="both", seed=2, prompt_sampling=rule))
    four = augment_plan(manifest, None, AugmentOptions(variants=4, mode="both", seed=2, prompt_sampling=rule)).to_pylist()
    assert one.to_pylist() == [row for row in four if row["variant"] == 0]


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="uniform-row, uniform-speaker"):
        AugmentOptions(prompt_sampling="uniform")
    with pytest.raises(ValueError, match="variants"):
        AugmentOptions(variants=0)
    with pytest.raises(ValueError, match="'id' and 'audio'"):
        augment_plan(pa.table({"id": ["a"]}), None, AugmentOptions())


def test_an_existing_plan_is_honoured_by_its_version(tmp_path: Path) -> None:
    """A plan.parquet written before versions were recorded (the legacy code's table) is rebuilt at
    version 1 and kept; a new folder gets version 2; other options against a kept plan conflict."""
    from pipeline.augment import plan_for_output
    from pipeline.io.output import OutputConflictError

    manifest = random_manifest(np.random.default_rng(4), 30, 4)
    options = AugmentOptions(variants=3, seed=1)

    def build(version: int, **changes: Any) -> pa.Table:
        return augment_plan(manifest, tmp_path, AugmentOptions(**{**options.__dict__, "plan_version": version, **changes}))

    old_folder = tmp_path / "old"
    old_folder.mkdir()
    legacy = legacy_augment_plan(manifest, tmp_path, options)
    pq.write_table(legacy, old_folder / "plan.parquet")
    path, plan, version, kept = plan_for_output(old_folder, build)
    assert (version, kept) == (1, True) and plan.equals(legacy)
    assert pq.read_table(path).equals(legacy)  # untouched
    with pytest.raises(OutputConflictError, match="another plan"):
        plan_for_output(old_folder, lambda v: build(v, seed=2))

    path, plan, version, kept = plan_for_output(tmp_path / "new", build)
    assert (version, kept) == (2, False) and plan_version_of(pq.read_schema(path)) == 2
    assert not plan.equals(legacy)
    assert plan_for_output(tmp_path / "new", build)[2:] == (2, True)


def test_plan_reads_file_uris_and_resolves_against_the_manifests_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`hsp augment file:///.../sub%20dir/asr.parquet`: the URI is percent-decoded and relative audio paths
    resolve against the manifest's folder (not the working directory); the prompts manifest likewise."""
    import click

    from pipeline.augment import AUGMENT_MODES, AugmentConfig, write_plan
    from pipeline.cli.options import check_path_or_uri
    from pipeline.errors import InputError
    from pipeline.synthesize import SynthesizeConfig

    folder = tmp_path / "sub dir"
    folder.mkdir()
    pq.write_table(pa.table({"id": ["a", "b"], "audio": ["a.wav", "clips/b.wav"], "speaker": ["s1", "s2"], "text": ["x", "y"]}),
                   folder / "asr.parquet")
    pq.write_table(pa.table({"id": ["p"], "audio": ["voices/p.wav"], "speaker": ["s3"]}), folder / "pool.parquet")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    uri = (folder / "asr.parquet").as_uri()
    assert "%20" in uri
    assert check_path_or_uri(None, None, uri) == uri  # the CLI argument accepts it
    with pytest.raises(click.BadParameter, match="does not exist"):
        check_path_or_uri(None, None, (folder / "missing.parquet").as_uri())

    synthesis = SynthesizeConfig(synthesizer="unused.pth", mode=None, modes=AUGMENT_MODES["vc"])
    config = AugmentConfig(synthesis=synthesis, plan=AugmentOptions(variants=1, mode="vc"), prompts=(folder / "pool.parquet").as_uri())
    plan = pq.read_table(write_plan(config, uri, str(tmp_path / "out"))).to_pylist()
    assert {row["audio"] for row in plan} == {str(folder / "a.wav"), str(folder / "clips" / "b.wav")}
    assert {row["target_audio"] for row in plan} == {str(folder / "voices" / "p.wav")}
    with pytest.raises(InputError, match="local path or file:// URI"):
        write_plan(config, "s3://bucket/asr.parquet", str(tmp_path / "out2"))
