"""Extract's tokens: transcript -> HierSpeech++ token ids (the `tokens.npy` member)."""

from __future__ import annotations

import time

import numpy as np

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage
from pipeline.io.npy import npy_bytes


class TokensStage(Stage):
    """Transcript -> token ids (english_cleaners2, 178-symbol table, blanks if `add_blank`).

    The espeak voice is the row's `language` column when present, else `default_language`.
    Empty or missing text, unknown characters and overlong texts fail the row with the reason.
    """

    name = "tokens"
    batch_size = 16
    field_inputs = ("text", "language")

    def __init__(self, *, add_blank: bool = True, max_tokens: int | None = 1024, default_language: str = "en-us", resources: Resources | None = None):
        super().__init__(resources)
        self.add_blank = add_blank
        self.max_tokens = max_tokens
        self.default_language = default_language
        self._versions: dict | None = None

    def setup(self) -> None:
        from hierspeech.text import frontend_versions

        self._versions = frontend_versions()

    def process_item(self, item: Item) -> None:
        from hierspeech.text import BLANK_ID, text_to_tokens

        started = time.perf_counter()
        if self._versions is None:
            self.setup()
        text = item.fields.get("text")
        if text is None:
            raise ValueError("the row has no text (column 'text' is missing or null); tokens need a transcript")
        language = item.fields.get("language") or self.default_language
        tokens = np.asarray(text_to_tokens(text, language=language, add_blank=self.add_blank, max_tokens=self.max_tokens), dtype=np.int64)
        phonemes = (tokens.shape[0] - 1) // 2 if self.add_blank else tokens.shape[0]
        if self.add_blank and np.any(tokens[0::2] != BLANK_ID):
            raise AssertionError("blank interspersing broke: even positions must be blanks")
        item.members["tokens.npy"] = npy_bytes(tokens)
        item.meta["tokens"] = {
            "shape": list(tokens.shape),
            "dtype": "int64",
            "cleaners": "english_cleaners2",
            "add_blank": self.add_blank,
            "blank_id": BLANK_ID,
            "language": language,
            "max_tokens": self.max_tokens,
            "versions": self._versions,
        }
        item.index.update({"token_count": int(tokens.shape[0]), "phoneme_count": int(phonemes), "text": text, "language": language})
        item.record_time(self.name, started)

