"""English text cleaning and espeak-ng phonemization (``english_cleaners2`` of the checkpoints).

Steps: transliterate to ASCII (Unidecode), lowercase, expand abbreviations, phonemize with
espeak-ng through phonemizer (punctuation kept, stress marks on), collapse whitespace. Numbers
are not expanded here: espeak-ng reads digits itself. Creating a phonemizer backend takes
~0.1-0.5 s, so one backend per language is kept per process.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from unidecode import unidecode

from hierspeech.text.errors import EmptyTextError, PhonemizerUnavailableError

DEFAULT_LANGUAGE = "en-us"

# (abbreviation, expansion), applied in this order as r"\b<abbr>\." case-insensitively.
_ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    ("mrs", "misess"),
    ("mr", "mister"),
    ("dr", "doctor"),
    ("st", "saint"),
    ("co", "company"),
    ("jr", "junior"),
    ("maj", "major"),
    ("gen", "general"),
    ("drs", "doctors"),
    ("rev", "reverend"),
    ("lt", "lieutenant"),
    ("hon", "honorable"),
    ("sgt", "sergeant"),
    ("capt", "captain"),
    ("esq", "esquire"),
    ("ltd", "limited"),
    ("col", "colonel"),
    ("ft", "fort"),
)
_ABBREVIATION_PATTERNS = tuple(
    (re.compile(rf"\b{abbr}\.", re.IGNORECASE), expansion) for abbr, expansion in _ABBREVIATIONS
)
_WHITESPACE = re.compile(r"\s+")

_backends: dict[str, Any] = {}
_lock = threading.Lock()


def expand_abbreviations(text: str) -> str:
    """Replace "dr.", "mrs.", "st." ... by their spelled-out words."""
    for pattern, expansion in _ABBREVIATION_PATTERNS:
        text = pattern.sub(expansion, text)
    return text


def collapse_whitespace(text: str) -> str:
    """Replace every run of whitespace by one space."""
    return _WHITESPACE.sub(" ", text)


def normalize_text(text: str) -> str:
    """The text as handed to the phonemizer: ASCII, lowercase, abbreviations expanded."""
    return expand_abbreviations(unidecode(text).lower())


def _import_espeak_backend() -> Any:
    try:
        from phonemizer.backend import EspeakBackend
    except Exception as e:  # ImportError, or espeak-ng library missing at import time
        hint = " (phonemizer 3.2.1 needs pkg_resources: pip install 'setuptools<81')" if "pkg_resources" in str(e) else ""
        raise PhonemizerUnavailableError(f"cannot import phonemizer's espeak backend: {e}{hint}") from e
    return EspeakBackend


def get_phonemizer(language: str = DEFAULT_LANGUAGE) -> Any:
    """The process-wide espeak-ng phonemizer for `language` (created on first use)."""
    with _lock:
        backend = _backends.get(language)
        if backend is None:
            espeak_backend = _import_espeak_backend()
            try:
                backend = espeak_backend(language, preserve_punctuation=True, with_stress=True)
            except Exception as e:
                raise PhonemizerUnavailableError(
                    f"cannot create the espeak-ng phonemizer for language {language!r}: {e}"
                ) from e
            _backends[language] = backend
        return backend


def phonemize(text: str, language: str = DEFAULT_LANGUAGE) -> str:
    """espeak-ng phonemes of already normalised `text` (punctuation kept, stress marked, stripped)."""
    backend = get_phonemizer(language)
    with _lock:  # one espeak-ng instance per language: serialise calls from threads
        result = backend.phonemize([text], strip=True)
    if not result:
        raise EmptyTextError(text, "phonemization")
    return result[0]


def english_cleaners2(text: str, language: str = DEFAULT_LANGUAGE) -> str:
    """Phoneme string of `text`, as the released checkpoints expect it.

    Raises:
        EmptyTextError: the text, or its phonemes, are empty or only whitespace.
    """
    normalized = normalize_text(text)
    if not normalized.strip():
        raise EmptyTextError(text, "normalisation")
    phonemes = collapse_whitespace(phonemize(normalized, language))
    if not phonemes.strip():
        raise EmptyTextError(text, "phonemization")
    return phonemes
