"""Tiny random wav2vec 2.0 configurations shaped like MMS-300m (for tests and examples)."""

from __future__ import annotations

from transformers import Wav2Vec2Config


def tiny_wav2vec2_config(*, num_hidden_layers: int = 10, stable_layer_norm: bool = True) -> Wav2Vec2Config:
    """MMS-300m's architecture (stable layer norm, layer-normed conv encoder, same conv strides and
    receptive field) at hidden size 32 and conv width 32: builds in milliseconds."""
    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_bias=True,
        feat_extract_norm="layer" if stable_layer_norm else "group",
        do_stable_layer_norm=stable_layer_norm,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        codevector_dim=16,
        proj_codevector_dim=16,
        num_codevectors_per_group=8,
        num_codevector_groups=2,
    )


def mms_300m_config() -> Wav2Vec2Config:
    """The architecture of facebook/mms-300m (24 layers, 1024 wide), for random-weight benchmarks."""
    return Wav2Vec2Config(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        conv_dim=(512,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_bias=True,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        feat_proj_dropout=0.0,
        codevector_dim=768,
        proj_codevector_dim=768,
    )
