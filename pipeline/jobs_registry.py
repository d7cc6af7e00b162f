"""Which manifest columns each job needs, for `hsp manifest validate --job NAME`."""

from __future__ import annotations

from pipeline.io.manifest import BASE_COLUMNS, Column

# Jobs add their own columns here (e.g. synthesize vc: target_audio, noise_scale, seed).
JOB_COLUMNS: dict[str, tuple[Column, ...]] = {
    "prepare": (),
    "extract": (),  # text (tokens) and language (espeak voice) are base columns
}


def job_columns(name: str | None) -> tuple[Column, ...]:
    """Base columns plus those of job `name` (None: base columns only)."""
    if name is None:
        return BASE_COLUMNS
    if name not in JOB_COLUMNS:
        raise KeyError(f"unknown job {name!r}; known: {sorted(JOB_COLUMNS)}")
    extra = JOB_COLUMNS[name]
    names = {c.name for c in extra}
    return tuple(c for c in BASE_COLUMNS if c.name not in names) + extra


def _register_jobs() -> None:
    """Columns the job modules declare themselves (one definition each)."""
    from pipeline.score import score_columns
    from pipeline.synthesize import (
        AUGMENT_COLUMNS,
        PLAN_COLUMNS,
        SYNTHESIZE_TTS_COLUMNS,
        SYNTHESIZE_VC_COLUMNS,
    )
    from pipeline.upsample import UPSAMPLE_COLUMNS

    # tar_key / tar_member / tar_members: internal, only in the manifest tar input builds (refused elsewhere)
    JOB_COLUMNS["upsample"] = UPSAMPLE_COLUMNS
    JOB_COLUMNS["synthesize_vc"] = SYNTHESIZE_VC_COLUMNS
    JOB_COLUMNS["synthesize_tts"] = SYNTHESIZE_TTS_COLUMNS
    JOB_COLUMNS["synthesize_plan"] = PLAN_COLUMNS  # OUT/plan.parquet of `hsp augment`
    JOB_COLUMNS["augment"] = AUGMENT_COLUMNS
    JOB_COLUMNS["score"] = score_columns()


_register_jobs()
