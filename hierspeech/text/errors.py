"""Errors of the text front-end: each names the text, the character or the reason."""

from __future__ import annotations


class TextFrontendError(ValueError):
    """Base class: the text cannot be turned into model tokens."""


class EmptyTextError(TextFrontendError):
    """The text (or what the phonemizer made of it) is empty."""

    def __init__(self, text: str, stage: str) -> None:
        self.text = text
        self.stage = stage
        super().__init__(f"text is empty after {stage}: {text!r}")


class UnknownSymbolError(TextFrontendError):
    """The phoneme string holds a character that is not in the symbol table."""

    def __init__(self, character: str, position: int, phonemes: str, text: str) -> None:
        self.character = character
        self.position = position
        self.phonemes = phonemes
        self.text = text
        super().__init__(
            f"character {character!r} (U+{ord(character):04X}) at position {position} of the phoneme "
            f"string {phonemes!r} is not in the symbol table (input text: {text!r})"
        )


class TextTooLongError(TextFrontendError):
    """The text gives more tokens than the configured limit."""

    def __init__(self, n_tokens: int, max_tokens: int, text: str) -> None:
        self.n_tokens = n_tokens
        self.max_tokens = max_tokens
        self.text = text
        head = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(
            f"text gives {n_tokens} tokens, more than max_tokens={max_tokens}; split it into "
            f"sentences or raise the limit (text: {head!r})"
        )


class PhonemizerUnavailableError(TextFrontendError):
    """phonemizer or the espeak-ng library cannot be loaded."""
