"""The one style of every model config: a frozen dataclass read from the official ``config.json``.

Every config (`SynthesizerConfig`, `TTVConfig`, `SpeechSRConfig`, `DenoiserConfig`, `MelConfig`)
is built the same way:

* ``Config(...)`` takes the fields (lists are stored as tuples: a config is a value);
* ``Config.from_dict(content)`` reads the content of the official ``config.json`` and
  ``Config.from_json(path)`` reads the file; both take the same keyword options on each config;
* ``config.to_dict()`` gives the fields as JSON values (for provenance and tiny test files).

The official files also carry what only training uses (the ``train`` section, file lists, optimiser
settings). Nothing the fields do not read is dropped: it is kept in ``config.unused`` under dotted
names (``"train.learning_rate"``). Keys that are neither read nor training settings, such as a key a
newer or forked release added to the ``model`` section, are ``config.unknown_keys``; loading names
them in a warning and goes on, so a new key is seen, and a known training key is never an error.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

log = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT", bound="ModelConfig")

_MISSING = object()


class ConfigReader:
    """Takes values out of an official config's content and remembers which were taken."""

    def __init__(self, content: Mapping[str, Any], kind: str, source: str) -> None:
        if not isinstance(content, Mapping):
            raise ValueError(f"{source}: a {kind} config is a JSON object, got {type(content).__name__}")
        self.content = content
        self.kind = kind
        self.source = source
        self._taken: set[tuple[str, ...]] = set()

    def section(self, name: str) -> Mapping[str, Any]:
        """The section `name` (a JSON object); a clear error when the file has none."""
        value = self.content.get(name)
        if not isinstance(value, Mapping):
            raise ValueError(
                f"{self.source}: not a {self.kind} config: no {name!r} section "
                f"(found {sorted(self.content)[:8]}); pass the official config.json of this model"
            )
        return value

    def take(self, *path: str, default: Any = _MISSING) -> Any:
        """The value at `path` (section, key or key alone), or `default` when given and absent."""
        node: Any = self.content
        for i, key in enumerate(path):
            if not isinstance(node, Mapping) or key not in node:
                if default is not _MISSING:
                    return default
                where = ".".join(path[: i + 1])
                raise ValueError(
                    f"{self.source}: not a {self.kind} config: missing key {where!r}; "
                    "pass the official config.json of this model"
                )
            node = node[key]
        self._taken.add(path)
        return node

    def take_fields(self, section: str | None, names: Iterable[str]) -> dict[str, Any]:
        """Every key of `section` (None: the top level) that is one of `names`."""
        node = self.content if section is None else self.section(section)
        prefix = () if section is None else (section,)
        wanted = set(names)
        return {key: self.take(*prefix, key) for key in node if key in wanted}

    def unread(self) -> dict[str, Any]:
        """Dotted name -> value of everything not taken (sections are walked one level deep)."""
        out: dict[str, Any] = {}
        for key, value in self.content.items():
            if (key,) in self._taken:
                continue
            if isinstance(value, Mapping):
                out.update({f"{key}.{k}": v for k, v in value.items() if (key, k) not in self._taken})
            else:
                out[key] = value
        return out


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    return value


def as_tuple(value: Any) -> Any:
    """Lists (nested too) as tuples, so that a config holding sizes stays immutable and hashable."""
    if isinstance(value, list | tuple):
        return tuple(as_tuple(v) for v in value)
    return value


class ModelConfig:
    """Base of the frozen model-config dataclasses: the official-file doors and the unused keys.

    Subclasses are ``@dataclass(frozen=True)`` and implement `_read` (which values the official
    file gives the fields); `SETTINGS` says which unread names are training settings, not unknown.
    """

    KIND: ClassVar[str] = "model"
    SETTINGS: ClassVar[frozenset[str]] = frozenset({"train", "data"})
    """First components of the dotted names that are training or data settings of the official file."""

    _unused: Mapping[str, Any] = MappingProxyType({})

    @classmethod
    def _read(cls, reader: ConfigReader, **options: Any) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls: type[ConfigT], content: Mapping[str, Any], *, source: str = "config", **options: Any) -> ConfigT:
        """Build from the content of the official config.json; `source` names it in messages."""
        reader = ConfigReader(content, cls.KIND, source)
        config = cls(**cls._read(reader, **options))
        unused = MappingProxyType(reader.unread())
        object.__setattr__(config, "_unused", unused)
        if config.unknown_keys:
            log.warning(
                "%s: %s config keys that no field reads, kept in .unused: %s",
                source, cls.KIND, ", ".join(config.unknown_keys),
            )
        return config

    @classmethod
    def from_json(cls: type[ConfigT], path: str | Path, **options: Any) -> ConfigT:
        """Read an official config.json (same options as `from_dict`)."""
        path = Path(path)
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); pass the official config.json") from exc
        return cls.from_dict(content, source=str(path), **options)

    @property
    def unused(self) -> Mapping[str, Any]:
        """Everything of the official file that no field reads, by dotted name (empty when built directly)."""
        return self._unused

    @property
    def unknown_keys(self) -> tuple[str, ...]:
        """The names in `unused` that are not training settings either (named in a warning on load)."""
        return tuple(sorted(k for k in self._unused if k.split(".", 1)[0] not in self.SETTINGS))

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (tuples as lists)."""
        return {f.name: _json_value(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def _freeze_sequences(self, *names: str) -> None:
        """In __post_init__: store the named list fields as (nested) tuples."""
        for name in names:
            object.__setattr__(self, name, as_tuple(getattr(self, name)))


def field_names(config_class: type) -> set[str]:
    """Names of a config dataclass's fields."""
    return {f.name for f in dataclasses.fields(config_class)}
