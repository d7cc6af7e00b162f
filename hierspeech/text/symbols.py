"""The 178-symbol table of the released HierSpeech++ TTV checkpoints.

Ids are positions in :data:`SYMBOLS`. The apostrophe ``'`` occurs twice (ids 174 and 176);
lookups resolve it to 176, the later entry, as the checkpoints were trained. Id 174 is never
produced but is kept so every id keeps its place.
"""

from __future__ import annotations

PAD = "_"
PUNCTUATION = ';:,.!?¡¿—…"«»“” '
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
IPA_LETTERS = (
    "ɑɐɒæɓʙβɔɕçɗɖðʤəɘɚɛɜɝɞɟʄɡɠɢʛɦɧħɥʜɨɪʝɭɬɫɮʟɱɯɰŋɳɲɴøɵɸθœɶʘɹɺɾɻʀʁɽʂʃʈʧʉʊʋⱱʌɣɤʍχʎʏʑʐʒʔʡʕʢǀǁǂǃ"
    "ˈˌːˑʼʴʰʱʲʷˠˤ˞↓↑→↗↘'\u0329'ᵻ"
)

SYMBOLS: tuple[str, ...] = (PAD, *PUNCTUATION, *LETTERS, *IPA_LETTERS)
"""Symbol of each id."""

SYMBOL_TO_ID: dict[str, int] = {}
for _id, _symbol in enumerate(SYMBOLS):
    SYMBOL_TO_ID[_symbol] = _id  # a repeated symbol keeps its last id ("'" -> 176)
del _id, _symbol

BLANK_ID = 0
"""Id interspersed between tokens when the model uses ``add_blank`` (the pad symbol)."""

SPACE_ID = SYMBOLS.index(" ")
