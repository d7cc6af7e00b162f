"""Per-stage resource overrides: `--stage-resources STAGE=num_cpus:1,num_gpus:0.5,actors:4,memory:2G`.

Every job gets them through the shared run options (CLI) or a `resources:` mapping (job YAML).
They are applied to the stages by name before the requests are fitted to the cluster, so an
override is still checked against what the cluster really has.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from pipeline.engine.stage import Stage
from pipeline.errors import ConfigError

RESOURCE_KEYS = ("num_cpus", "num_gpus", "actors", "memory")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class StageResourcesError(ConfigError):
    """A resource override names an unknown stage or key, or has a bad value."""


def parse_memory(value: Any) -> int:
    """Bytes from an int or a size such as '512M', '2G', '1.5GiB'."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)(?:I?B)?\s*", str(value).upper())
    if not match:
        raise StageResourcesError(f"memory {value!r} is not a size such as 512M or 2G")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _convert(stage: str, key: str, value: Any) -> float | int:
    if key not in RESOURCE_KEYS:
        raise StageResourcesError(f"stage '{stage}': unknown resource key {key!r}; allowed: {', '.join(RESOURCE_KEYS)}")
    try:
        if key == "memory":
            number: float | int = parse_memory(value)
        elif key == "actors":
            number = int(value)
        else:
            number = float(value)
    except (TypeError, ValueError) as exc:
        raise StageResourcesError(f"stage '{stage}': {key}={value!r} is not a number") from exc
    if number < 0 or (key == "actors" and number < 1):
        raise StageResourcesError(f"stage '{stage}': {key}={value!r} must be {'>= 1' if key == 'actors' else '>= 0'}")
    return number


def parse_stage_resources(specs: list[str] | tuple[str, ...]) -> dict[str, dict[str, float | int]]:
    """Parse repeated `STAGE=key:value,key:value` strings into {stage: {key: value}}."""
    result: dict[str, dict[str, float | int]] = {}
    for spec in specs:
        stage, sep, body = spec.partition("=")
        stage = stage.strip()
        if not sep or not stage or not body.strip():
            raise StageResourcesError(f"{spec!r} is not STAGE=key:value[,key:value...] (keys: {', '.join(RESOURCE_KEYS)})")
        for pair in body.split(","):
            key, colon, value = pair.partition(":")
            if not colon:
                raise StageResourcesError(f"{spec!r}: {pair!r} is not key:value (keys: {', '.join(RESOURCE_KEYS)})")
            result.setdefault(stage, {})[key.strip()] = _convert(stage, key.strip(), value.strip())
    return result


def format_stage_resources(overrides: dict[str, dict[str, Any]]) -> list[str]:
    """The inverse of `parse_stage_resources` (for a YAML `resources:` mapping -> CLI strings)."""
    specs = []
    for stage, values in overrides.items():
        if not isinstance(values, dict) or not values:
            raise StageResourcesError(f"resources of stage '{stage}' must be a mapping of {', '.join(RESOURCE_KEYS)}")
        specs.append(f"{stage}=" + ",".join(f"{key}:{value}" for key, value in values.items()))
    return specs


def apply_stage_resources(stages: list[Stage], overrides: dict[str, dict[str, float | int]]) -> list[str]:
    """Set the overridden fields on the stages' Resources; returns notes for the plan.

    Raises StageResourcesError naming the known stages when an override names none of them.
    """
    by_name = {stage.name: stage for stage in stages}
    unknown = sorted(set(overrides) - set(by_name))
    if unknown:
        raise StageResourcesError(
            f"resources given for unknown stage(s) {', '.join(unknown)}; this job's stages are: {', '.join(by_name)}"
        )
    notes = []
    for name, values in overrides.items():
        for key, value in values.items():
            _convert(name, key, value)
        stage = by_name[name]  # a new object: an override never reaches a stage sharing the old one
        stage.resources = dataclasses.replace(stage.resources, **values)
        notes.append(f"stage '{name}': resources set by the run options: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    return notes
