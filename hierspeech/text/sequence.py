"""Phoneme strings to token ids and back, and the blank interspersing of ``add_blank``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from hierspeech.text.cleaners import DEFAULT_LANGUAGE, english_cleaners2
from hierspeech.text.errors import TextTooLongError, UnknownSymbolError
from hierspeech.text.symbols import BLANK_ID, SYMBOL_TO_ID, SYMBOLS

DEFAULT_MAX_TOKENS = 1024
"""Default limit on ids per text (before blanks). The longest golden sentence gives 450."""

T = TypeVar("T")


def cleaned_text_to_sequence(phonemes: str, text: str | None = None) -> list[int]:
    """Ids of each character of a phoneme string.

    Raises:
        UnknownSymbolError: naming the first character the table lacks and its position.
    """
    ids = []
    for position, character in enumerate(phonemes):
        symbol_id = SYMBOL_TO_ID.get(character)
        if symbol_id is None:
            raise UnknownSymbolError(character, position, phonemes, phonemes if text is None else text)
        ids.append(symbol_id)
    return ids


def sequence_to_text(ids: Sequence[int]) -> str:
    """The phoneme string of a sequence of ids (blanks included as "_")."""
    return "".join(SYMBOLS[i] for i in ids)


def text_to_sequence(
    text: str,
    *,
    language: str = DEFAULT_LANGUAGE,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
) -> list[int]:
    """Token ids of raw text through ``english_cleaners2`` (no blanks).

    Raises:
        EmptyTextError, UnknownSymbolError, TextTooLongError (all `TextFrontendError`).
    """
    phonemes = english_cleaners2(text, language)
    ids = cleaned_text_to_sequence(phonemes, text)
    if max_tokens is not None and len(ids) > max_tokens:
        raise TextTooLongError(len(ids), max_tokens, text)
    return ids


def intersperse(items: Sequence[T], item: T) -> list[T]:
    """`item` before, between and after every element: length 2n+1."""
    result = [item] * (2 * len(items) + 1)
    result[1::2] = items
    return result


def text_to_tokens(
    text: str,
    *,
    language: str = DEFAULT_LANGUAGE,
    add_blank: bool = True,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
) -> list[int]:
    """The TTV's input ids for `text`: `text_to_sequence`, then blanks (id 0) interspersed if `add_blank`."""
    ids = text_to_sequence(text, language=language, max_tokens=max_tokens)
    return intersperse(ids, BLANK_ID) if add_blank else ids
