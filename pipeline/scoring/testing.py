"""Tiny random ASR models saved like Hub checkpoints, to test WER plumbing without a download.

`save_tiny_ctc(folder)` writes a Wav2Vec2ForCTC with its processor (character vocabulary),
`save_tiny_whisper(folder)` a WhisperForConditionalGeneration with its processor (a byte-level
vocabulary without merges). Both build in well under a second and load back through
`from_pretrained` exactly as a user's model would. Their transcripts are random text.
"""

from __future__ import annotations

import json
from pathlib import Path

CTC_CHARACTERS = list("abcdefghijklmnopqrstuvwxyz'")


def save_tiny_ctc(folder: str | Path, *, seed: int = 0) -> Path:
    """A 2-layer, 32-wide Wav2Vec2ForCTC + Wav2Vec2Processor in `folder`; returns the folder."""
    import torch
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2Processor

    from hierspeech.testing.w2v import tiny_wav2vec2_config

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{ch: i + 3 for i, ch in enumerate(CTC_CHARACTERS)}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True)
    config = tiny_wav2vec2_config(num_hidden_layers=2)
    config.vocab_size = len(vocab)
    config.pad_token_id = vocab["<pad>"]
    config.architectures = ["Wav2Vec2ForCTC"]
    torch.manual_seed(seed)
    Wav2Vec2ForCTC(config).eval().save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def save_tiny_whisper(folder: str | Path, *, seed: int = 0, max_new_tokens: int = 8) -> Path:
    """A 1+1-layer, 16-wide Whisper + WhisperProcessor in `folder` (English-only style); returns the folder."""
    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    byte_symbols = sorted(set(bytes_to_unicode().values()))
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"]
    vocab = {symbol: i for i, symbol in enumerate(byte_symbols + specials)}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = WhisperTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token="<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000)
    eos, start = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    config = WhisperConfig(
        vocab_size=len(vocab),
        num_mel_bins=80,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=1500,
        max_target_positions=32,
        pad_token_id=eos,
        bos_token_id=eos,
        eos_token_id=eos,
        decoder_start_token_id=start,
        suppress_tokens=None,
        begin_suppress_tokens=None,  # the default names ids of the real 51k vocabulary
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config.decoder_start_token_id = start
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = eos
    model.generation_config.no_timestamps_token_id = vocab["<|notimestamps|>"]
    model.generation_config.max_new_tokens = max_new_tokens
    model.generation_config.forced_decoder_ids = None
    model.save_pretrained(folder)
    WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
