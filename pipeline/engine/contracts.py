"""The build-time check of a job's stage list: every key a stage reads has a writer before it.

A stage reads `item.data` keys (`inputs`, `optional_inputs`) that an earlier stage writes
(`outputs`), and manifest columns (`field_inputs`) that the job's manifest has. The check runs once
on the driver when the job's stages are built, so a broken list fails before any row is read,
naming the stage and the key, instead of as a KeyError in a worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pipeline.engine.stage import Stage
from pipeline.errors import StageContractError


def check_stage_list(job_name: str, stages: Sequence[Stage], manifest_columns: Iterable[str]) -> None:
    """Raise StageContractError naming the first stage that reads a key nothing before it provides."""
    columns = set(manifest_columns)
    written: set[str] = set()
    for position, stage in enumerate(stages):
        for key in (*stage.inputs, *stage.optional_inputs):
            if key not in written:
                earlier = ", ".join(s.name for s in stages[:position]) or "none"
                raise StageContractError(
                    f"job {job_name!r}: stage {stage.name!r} reads item.data[{key!r}] but no earlier stage writes it "
                    f"(earlier stages: {earlier}); put the stage that writes {key!r} first"
                )
        for column in stage.field_inputs:
            if column not in columns:
                raise StageContractError(
                    f"job {job_name!r}: stage {stage.name!r} reads manifest column {column!r}, which the job's "
                    f"manifest columns ({', '.join(sorted(columns))}) do not include"
                )
        written.update(stage.outputs)
