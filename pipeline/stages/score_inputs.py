"""Score's input: a manifest row or a tar sample -> the audio to score, its reference voice, its text.

The audio is decoded at its own rate (bandwidth needs the full band; each scorer resamples to
what its model takes) and kept byte for byte as the output sample's audio member: scoring
never re-encodes what it judged. Tar input (any job's shards) keeps every other member as it is
and its json as ``source_meta``; the reference voice and the text come from the manifest's
columns, or from that json (a synthesis output's prompt, and its VC source).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage
from pipeline.io.audio import ChannelPolicy, decode_audio, encode_flac, read_bytes
from pipeline.io.shards import AUDIO_EXTENSIONS
from pipeline.io.tar_source import sample_members
from pipeline.stages.decode import PASSTHROUGH, truncation_record

DEFAULT_REFERENCE_COLUMN = "reference_audio"
REFERENCE_RATE = 16000  # speaker embeddings are computed at 16 kHz: decode the references there


def _json_path(meta: dict[str, Any], *keys: str) -> str | None:
    """``meta[k0][k1]...`` when it is a non-empty string (a path recorded in a sample json)."""
    value: Any = meta
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if isinstance(value, str) and value else None


class ScoreInputStage(Stage):
    """Manifest row or tar sample -> ``data['audio']`` at its own rate, ``data['reference']`` and
    ``data['source']`` at 16 kHz when known, ``data['text']``; the audio member and provenance.

    Reads: the manifest fields (``audio``, the reference column, ``text``) or the tar columns.
    Writes: ``data['audio']``, ``data['sample_rate']``, ``data['reference']`` (or None),
    ``data['source']`` (or None), ``data['text']`` (or None); the sample's members.
    """

    name = "score_inputs"
    batch_size = 8
    field_inputs = ("audio",)  # a path, or (tar input) the shard of the sample
    outputs = ("audio", "sample_rate", "reference", "source", "text")  # reference, source, text: None when unknown

    def __init__(self, *, reference_column: str = DEFAULT_REFERENCE_COLUMN, channel_policy: ChannelPolicy = "first",
                 max_seconds: float | None = 3600.0, max_reference_seconds: float | None = 120.0,
                 resources: Resources | None = None):
        super().__init__(resources)
        self.reference_column = reference_column
        self.channel_policy = channel_policy
        self.max_seconds = max_seconds
        self.max_reference_seconds = max_reference_seconds

    def process_item(self, item: Item) -> None:
        fields = item.fields
        if fields.get("tar_members"):
            audio_bytes, ext, label, source_meta = self._tar_sample(item)
            reference = (_json_path(source_meta, self.reference_column) or _json_path(source_meta, "reference")  # a score output
                         or _json_path(source_meta, "prompt", "path"))  # a synthesis output: its voice prompt
            source = _json_path(source_meta, "source", "path") if source_meta.get("mode") == "vc" else None
            text = source_meta.get("text") if isinstance(source_meta.get("text"), str) else None
        else:
            path = fields.get("audio")
            if not path:
                raise ValueError(f"column 'audio' is empty for id {item.id!r}")
            audio_bytes, ext, label = None, None, path
            reference, source, text = fields.get(self.reference_column), None, fields.get("text")
            for name in PASSTHROUGH:
                if fields.get(name) is not None:
                    item.meta[name] = item.index[name] = fields[name]
            item.meta["source"] = path
        decoded = decode_audio(audio_bytes if audio_bytes is not None else label, channel_policy=self.channel_policy,
                               max_seconds=self.max_seconds, name=label)
        references = {"reference": self._reference(reference, "reference"), "source": self._reference(source, "VC source")}
        if audio_bytes is None:  # manifest input: keep the file as it is when it is a member type readers know
            audio_bytes, ext = self._file_member(label, decoded.samples, decoded.sample_rate)

        duration = decoded.samples.shape[0] / decoded.sample_rate
        item.members[ext] = audio_bytes
        item.data.update({"audio": decoded.samples, "sample_rate": decoded.sample_rate, "text": text, **references})
        item.meta.update({
            "sample_rate": decoded.sample_rate, "duration": duration, "num_samples": int(decoded.samples.shape[0]),
            "audio_member": ext, "source_channels": decoded.source_channels, "source_format": decoded.source_format,
            "reference": reference, "reference_source": source, **truncation_record(decoded),
        })  # fmt: skip
        item.index.update({"sample_rate": decoded.sample_rate, "duration": duration, "source_duration": duration,
                           "truncated": decoded.truncated, "reference": reference})

    def _reference(self, path: str | None, what: str) -> np.ndarray | None:
        if not path:
            return None
        try:
            return decode_audio(path, target_sample_rate=REFERENCE_RATE, max_seconds=self.max_reference_seconds).samples
        except Exception as exc:
            raise ValueError(f"{what} audio {path}: {exc}") from exc

    @staticmethod
    def _file_member(path: str, samples: np.ndarray, rate: int) -> tuple[bytes, str]:
        ext = os.path.splitext(path)[1].lstrip(".").lower()
        if ext in AUDIO_EXTENSIONS:
            return read_bytes(path), ext
        return encode_flac(samples, rate, 16), "flac"  # a format WebDataset readers would not recognise

    def _tar_sample(self, item: Item) -> tuple[bytes, str, str, dict[str, Any]]:
        fields = item.fields
        shard, key, ext = fields["audio"], fields["tar_key"], fields.get("tar_member")
        members = sample_members(fields)
        if not ext:
            raise ValueError(f"sample {key!r} of {shard} has no audio member (members: {sorted(members)})")
        audio = members.pop(ext)
        raw_json = members.pop("json", None)
        source_meta: dict[str, Any] = {}
        if raw_json is not None:
            try:
                parsed = json.loads(raw_json)
            except ValueError:
                parsed = {"unparsed_json": raw_json.decode("utf-8", "replace")}
            source_meta = parsed if isinstance(parsed, dict) else {"json": parsed}
            item.meta["source_meta"] = source_meta
            for name in PASSTHROUGH:
                if isinstance(source_meta.get(name), str):
                    item.meta[name] = item.index[name] = source_meta[name]
        item.members.update(members)  # pass-through, byte for byte
        item.meta.update({"source": shard, "source_shard": shard, "source_key": key, "source_member": ext,
                          "passthrough_members": sorted(members)})
        item.index.update({"source_shard": shard, "source_key": key})
        return audio, ext, f"{shard}:{key}.{ext}", source_meta
