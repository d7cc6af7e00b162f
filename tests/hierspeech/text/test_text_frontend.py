"""Text front-end against the kit's phonemizer-3.2.1 golden, plus error and no-drop properties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hierspeech.text import (
    BLANK_ID,
    SYMBOL_TO_ID,
    SYMBOLS,
    EmptyTextError,
    TextFrontendError,
    TextTooLongError,
    UnknownSymbolError,
    cleaned_text_to_sequence,
    english_cleaners2,
    frontend_versions,
    get_phonemizer,
    intersperse,
    normalize_text,
    phonemize,
    sequence_to_text,
    text_to_sequence,
    text_to_tokens,
)

GOLDEN = "golden/text/text_frontend.phonemizer-3.2.1.json"


@pytest.fixture(scope="module")
def golden(reference_dir: Path) -> dict:
    return json.loads((reference_dir / GOLDEN).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def espeak() -> dict:
    versions = frontend_versions()
    if versions["espeak-ng"] is None:
        pytest.skip("espeak-ng is not available")
    return versions


def _golden_cases(golden: dict) -> list[dict]:
    cases = [case for example in golden["examples"].values() for case in example.values()]
    return cases + list(golden["own_sentences"])


def test_symbol_table_equals_golden(golden: dict) -> None:
    table = golden["symbol_table"]["symbols_by_id"]
    assert len(SYMBOLS) == golden["symbol_table"]["count"] == 178
    assert [row["symbol"] for row in table] == list(SYMBOLS)
    assert [row["id"] for row in table] == list(range(178))
    assert SYMBOLS[174] == SYMBOLS[176] == "'"
    assert SYMBOL_TO_ID["'"] == 176
    assert len(SYMBOL_TO_ID) == 177


def test_golden_texts(golden: dict, espeak: dict) -> None:
    if espeak["phonemizer"] != golden["versions"]["phonemizer"]:
        pytest.skip(f"ids depend on the phonemizer version: golden {golden['versions']['phonemizer']}, here {espeak['phonemizer']}")
    cases = _golden_cases(golden)
    assert len(cases) == 18
    checked = 0
    for case in cases:
        text = case["input"]
        assert normalize_text(text) == case["after_ascii_lower_abbrev"], text
        if case["error"] is not None:
            with pytest.raises(EmptyTextError):
                text_to_sequence(text)
            continue
        assert english_cleaners2(text) == case["cleaned_phonemes"], text
        ids = text_to_sequence(text)
        assert ids == case["ids"], text
        assert text_to_tokens(text) == case["ids_with_blanks"], text
        assert len(case["ids_with_blanks"]) == 2 * len(ids) + 1
        checked += 1
    assert checked == 17


def test_intersperse() -> None:
    assert intersperse([5, 6, 7], BLANK_ID) == [0, 5, 0, 6, 0, 7, 0]
    assert intersperse([], BLANK_ID) == [0]


def test_sequence_round_trip() -> None:
    phonemes = "ðə kˈæfeɪ, ɪt's."
    assert sequence_to_text(cleaned_text_to_sequence(phonemes)) == phonemes


def test_unknown_character_is_named() -> None:
    with pytest.raises(UnknownSymbolError) as info:
        cleaned_text_to_sequence("abc[d")
    assert info.value.character == "["
    assert info.value.position == 3
    assert "'['" in str(info.value) and "U+005B" in str(info.value)
    assert isinstance(info.value, TextFrontendError)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_raises(text: str, espeak: dict) -> None:
    with pytest.raises(EmptyTextError, match="empty"):
        text_to_sequence(text)


def test_overlong_text_raises(espeak: dict) -> None:
    text = "hello world. " * 10
    n = len(text_to_sequence(text, max_tokens=None))
    assert text_to_sequence(text, max_tokens=n) == text_to_sequence(text, max_tokens=None)
    with pytest.raises(TextTooLongError) as info:
        text_to_sequence(text, max_tokens=n - 1)
    assert info.value.n_tokens == n and info.value.max_tokens == n - 1
    assert "max_tokens" in str(info.value)


@pytest.mark.parametrize(
    "pieces",
    [
        ("rose by 3.7 percent to 4.1 billion dollars.", "then it fell."),
        ("the price was $3.50, up 2.5 percent.", "nobody expected that."),
        ("it's 10:30 a.m.", "the meeting is over."),
    ],
)
def test_no_text_is_dropped(pieces: tuple[str, ...], espeak: dict) -> None:
    """Phonemizing the whole text gives the pieces' phonemes one after another (nothing lost)."""
    whole = english_cleaners2(" ".join(pieces))
    separately = " ".join(phonemize(normalize_text(piece)) for piece in pieces)
    assert whole == separately
    assert whole.endswith(english_cleaners2(pieces[-1]))


def test_backend_is_cached(espeak: dict) -> None:
    assert get_phonemizer("en-us") is get_phonemizer("en-us")


def test_frontend_versions(espeak: dict) -> None:
    assert espeak["phonemizer"] and espeak["espeak-ng"]
    assert espeak["espeak-ng"].count(".") >= 1


def test_phonemizer_version_report_works(espeak: dict) -> None:
    """phonemizer 3.2.1 reports its version through pkg_resources (setuptools<81 is a dependency)."""
    import pkg_resources
    from phonemizer.version import version

    assert f"phonemizer-{espeak['phonemizer']}" in version()
    assert pkg_resources.get_distribution("phonemizer").version == espeak["phonemizer"]
