"""Text front-end: raw text to the TTV's token ids (``english_cleaners2`` + 178-symbol table)."""

from hierspeech.text.cleaners import (
    DEFAULT_LANGUAGE,
    english_cleaners2,
    get_phonemizer,
    normalize_text,
    phonemize,
)
from hierspeech.text.errors import (
    EmptyTextError,
    PhonemizerUnavailableError,
    TextFrontendError,
    TextTooLongError,
    UnknownSymbolError,
)
from hierspeech.text.sequence import (
    DEFAULT_MAX_TOKENS,
    cleaned_text_to_sequence,
    intersperse,
    sequence_to_text,
    text_to_sequence,
    text_to_tokens,
)
from hierspeech.text.symbols import BLANK_ID, SPACE_ID, SYMBOL_TO_ID, SYMBOLS
from hierspeech.text.versions import frontend_versions

__all__ = [
    "BLANK_ID",
    "DEFAULT_LANGUAGE",
    "DEFAULT_MAX_TOKENS",
    "SPACE_ID",
    "SYMBOLS",
    "SYMBOL_TO_ID",
    "EmptyTextError",
    "PhonemizerUnavailableError",
    "TextFrontendError",
    "TextTooLongError",
    "UnknownSymbolError",
    "cleaned_text_to_sequence",
    "english_cleaners2",
    "frontend_versions",
    "get_phonemizer",
    "intersperse",
    "normalize_text",
    "phonemize",
    "sequence_to_text",
    "text_to_sequence",
    "text_to_tokens",
]
