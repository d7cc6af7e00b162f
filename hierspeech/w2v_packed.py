"""A CPU inference path for the truncated wav2vec 2.0 encoder: frames as rows, items packed.

transformers' forward keeps the conv encoder in (channels, time) layout, transposes around
every LayerNorm, pads a batch to its longest item and masks the padding. On a CPU that leaves
about a third of the time outside the matrix products. This path computes the same function
from the same weights with the work arranged for a CPU:

* the conv encoder runs in (time, channels) layout: a stride-s convolution is one or two matrix
  products over row views of the input (no im2col copy), LayerNorm is over contiguous rows,
  and it runs 64 output frames at a time so that its intermediates stay in cache;
* the items of a batch are concatenated row-wise (no padding, no mask): projections, norms and
  feed-forward layers see one tall matrix; attention runs per item on its own rows;
* the 128-tap grouped positional convolution runs as a blocked FFT convolution
  (overlap-save, 256-point blocks): about 30x fewer operations than the direct convolution;
* linear layers go through oneDNN when PyTorch has it, with the feed-forward GELU fused.

Float32 only, inference only, for the stable-layer-norm architecture of MMS-300m and
XLS-R-300m (layer-normed conv encoder, GELU). :func:`packed_support` says why a model does
not qualify; :class:`hierspeech.w2v.Wav2Vec2Features` then keeps the transformers path.
Results match transformers to float32 rounding (~1e-5 on unit-scale features); the tests
and ``bench/bench_frontends.py`` measure it against the full upstream model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import Wav2Vec2Model

FFT_BLOCK = 256
"""FFT length of the blocked positional convolution; must exceed the kernel (128)."""
FFT_MAX_BLOCKS = 48
"""Blocks (of 129 frames) per batched FFT product: bounds the transient spectra."""
CONV_CHUNK_FRAMES = 64
"""Output frames (1.28 s) the conv encoder computes at a time: its intermediates fit in cache."""


def packed_support(model: Wav2Vec2Model) -> str | None:
    """None when the packed path computes `model` exactly, else the reason it does not."""
    config = model.config
    checks = {
        "post-norm encoder (do_stable_layer_norm=False)": config.do_stable_layer_norm,
        f"conv encoder norm {config.feat_extract_norm!r} (needs 'layer')": config.feat_extract_norm == "layer",
        f"conv activation {config.feat_extract_activation!r} (needs 'gelu')": config.feat_extract_activation == "gelu",
        f"hidden activation {config.hidden_act!r} (needs 'gelu')": config.hidden_act == "gelu",
        "adapter layers": getattr(config, "adapter_attn_dim", None) is None,
        "convolutional positional embedding": hasattr(model.encoder, "pos_conv_embed"),
        f"positional kernel {config.num_conv_pos_embeddings} >= FFT block {FFT_BLOCK}": (
            config.num_conv_pos_embeddings < FFT_BLOCK
        ),
    }
    for reason, ok in checks.items():
        if not ok:
            return reason
    return None


@functools.cache
def onednn_linear_available() -> bool:
    """Whether this PyTorch build has oneDNN's fused linear (+GELU) kernel, checked on a tiny case."""
    try:
        x, w, b = torch.ones(2, 3), torch.ones(4, 3), torch.zeros(4)
        out = torch.ops.mkldnn._linear_pointwise(x, w, b, "gelu", [], "none")
        return bool(torch.allclose(out, F.gelu(F.linear(x, w, b))))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, gelu: bool = False) -> torch.Tensor:
    """``F.linear`` (then exact GELU), through oneDNN when available: ~15 % faster on one core."""
    if onednn_linear_available():
        if gelu:
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    out = F.linear(x, weight, bias)
    return F.gelu(out) if gelu else out


def _layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


@dataclass(frozen=True)
class _ConvStage:
    """One conv-encoder layer: weight as (kernel * in, out) so tap j is the row block j."""

    kernel: int
    stride: int
    weight: torch.Tensor
    bias: torch.Tensor | None
    norm: nn.LayerNorm


def _conv_stage(layer: nn.Module) -> _ConvStage:
    conv = layer.conv
    weight = conv.weight.detach()  # (out, in, kernel)
    taps = weight.permute(2, 1, 0).reshape(-1, weight.shape[0]).contiguous()
    bias = None if conv.bias is None else conv.bias.detach()
    return _ConvStage(conv.kernel_size[0], conv.stride[0], taps, bias, layer.layer_norm)


def _strided_conv(h: torch.Tensor, stage: _ConvStage) -> torch.Tensor:
    """Valid convolution of (T, C_in) rows -> (T_out, C_out), as matrix products on row views.

    Output t reads the contiguous rows s*t .. s*t+k-1 of the input. Narrow inputs (the raw
    waveform) are unfolded into a (T_out, k*C_in) matrix. Wide ones are not copied: the first
    s taps of output t are row t of the (T_out, s*C_in) view of the input, and the taps beyond
    the stride (kernel 3, stride 2) are one more product with the input rows shifted by s.
    """
    k, s = stage.kernel, stage.stride
    frames, channels = h.shape
    n = (frames - k) // s + 1
    if n < 1:
        raise ValueError(f"input of {frames} frames is shorter than the conv kernel ({k})")
    if k <= s or k * channels <= 256:
        columns = h.contiguous().view(-1).as_strided((n, k * channels), (s * channels, 1))
        return _matmul_bias(columns.contiguous(), stage.weight, stage.bias)
    out = _matmul_bias(h[: n * s].reshape(n, s * channels), stage.weight[: s * channels], stage.bias)
    for tap in range(s, k):
        out.addmm_(h[tap : tap + s * (n - 1) + 1 : s], stage.weight[tap * channels : (tap + 1) * channels])
    return out


def _matmul_bias(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x @ weight if bias is None else torch.addmm(bias, x, weight)


class BlockedFFTConv:
    """The grouped positional convolution (same padding, trailing frame dropped) by overlap-save FFT.

    Each block of ``FFT_BLOCK`` padded input frames yields ``FFT_BLOCK - kernel + 1`` outputs;
    in the frequency domain a group's convolution is a (C_g x C_g) complex matrix per bin, and
    the blocks of every item of a batch share one batched product.
    """

    def __init__(self, conv: nn.Conv1d) -> None:
        weight = conv.weight.detach()  # (C, C_g, kernel)
        self.kernel = conv.kernel_size[0]
        self.pad = conv.padding[0]
        self.groups = conv.groups
        self.group_channels = weight.shape[1]
        self.channels = weight.shape[0]
        self.block = FFT_BLOCK - self.kernel + 1
        per_group = weight.view(self.groups, self.group_channels, self.group_channels, self.kernel)
        # Cross-correlation = product with the conjugate spectrum; layout (bin, group, out, in).
        spectrum = torch.fft.rfft(per_group, n=FFT_BLOCK, dim=-1).conj()
        self.spectrum = spectrum.permute(3, 0, 1, 2).contiguous()
        self.bias = None if conv.bias is None else conv.bias.detach()

    def __call__(self, h: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
        """(sum T_i, C) packed rows -> (sum T_i, C): each item convolved on its own, zero padded.

        Blocks go through the FFT ``FFT_MAX_BLOCKS`` at a time, so the transient spectra stay
        bounded (~0.2 GB at MMS-300m's width) however long the items are.
        """
        block = self.block
        out = h.new_empty(h.shape)
        pending: list[tuple[torch.Tensor, int, int]] = []  # (blocks, first output row, rows)
        pending_blocks = 0
        start = 0
        for n in lengths:
            count = -(-n // block)
            padded = h.new_zeros(count * block + self.kernel - 1, h.shape[1])
            padded[self.pad : self.pad + n] = h[start : start + n]
            views = padded.as_strided((count, FFT_BLOCK, h.shape[1]), (block * h.shape[1], h.shape[1], 1))
            for first in range(0, count, FFT_MAX_BLOCKS):
                piece = views[first : first + FFT_MAX_BLOCKS]
                if pending_blocks + piece.shape[0] > FFT_MAX_BLOCKS:
                    self._flush(pending, out)
                    pending, pending_blocks = [], 0
                pending.append((piece, start + first * block, min(n - first * block, piece.shape[0] * block)))
                pending_blocks += piece.shape[0]
            start += n
        self._flush(pending, out)
        return out if self.bias is None else out.add_(self.bias)

    def _flush(self, pending: list[tuple[torch.Tensor, int, int]], out: torch.Tensor) -> None:
        """Convolve the pending blocks in one batched product and write their valid rows."""
        if not pending:
            return
        blocks = torch.cat([piece for piece, _, _ in pending])
        bins = FFT_BLOCK // 2 + 1
        spectra = torch.fft.rfft(blocks, dim=1).view(-1, bins, self.groups, self.group_channels)
        mixed = torch.matmul(self.spectrum, spectra.permute(1, 2, 3, 0))  # (bin, group, out, block)
        mixed = mixed.permute(3, 0, 1, 2).reshape(-1, bins, self.channels)
        valid = torch.fft.irfft(mixed, n=FFT_BLOCK, dim=1)[:, : self.block]
        first = 0
        for piece, row, rows in pending:
            count = piece.shape[0]
            out[row : row + rows] = valid[first : first + count].reshape(count * self.block, self.channels)[:rows]
            first += count


class PackedWav2Vec2:
    """``hidden_states[L]`` of a (truncated, stable-layer-norm) ``Wav2Vec2Model`` for a list of
    prepared waveforms, computed in packed (frames, channels) layout on the CPU.

    Holds views of the model's weights plus a few re-laid-out copies (conv taps, the positional
    kernel's spectrum: about 90 MB for MMS-300m); the model itself is not modified.
    """

    def __init__(self, model: Wav2Vec2Model) -> None:
        reason = packed_support(model)
        if reason is not None:
            raise ValueError(f"the packed CPU path does not cover this model: {reason}")
        self.model = model
        self.conv_stages = [_conv_stage(layer) for layer in model.feature_extractor.conv_layers]
        # Total stride and receptive field (in samples) of one output frame of the conv encoder.
        self.conv_stride = math.prod(stage.stride for stage in self.conv_stages)
        self.conv_field = 1 + sum(
            (stage.kernel - 1) * math.prod(earlier.stride for earlier in self.conv_stages[:i])
            for i, stage in enumerate(self.conv_stages)
        )
        self.positional = BlockedFFTConv(model.encoder.pos_conv_embed.conv)
        self.heads = model.config.num_attention_heads

    @torch.inference_mode()
    def conv_features(self, wav: torch.Tensor) -> torch.Tensor:
        """(S,) prepared audio -> (frames, conv channels), the conv encoder's output.

        Computed ``CONV_CHUNK_FRAMES`` output frames at a time from the samples those frames
        see (the convolutions are valid and every chunk starts on a multiple of the total
        stride, so the result is bit-identical to one pass). A chunk's intermediates stay in
        the CPU cache (a one-pass run streams ~130 MB per 20 s through memory at the first
        layer; chunked it is ~25 % faster) and memory no longer grows with the length.
        """
        samples = wav.to(torch.float32).reshape(-1)
        stride, field = self.conv_stride, self.conv_field
        if samples.shape[0] < field:
            raise ValueError(f"{samples.shape[0]} samples are fewer than one frame's receptive field ({field})")
        frames = (samples.shape[0] - field) // stride + 1
        out = samples.new_empty(frames, self.conv_stages[-1].weight.shape[1])
        for first in range(0, frames, CONV_CHUNK_FRAMES):
            last = min(frames, first + CONV_CHUNK_FRAMES)
            h = samples[stride * first : stride * (last - 1) + field].reshape(-1, 1)
            for stage in self.conv_stages:
                h = F.gelu(_layer_norm(_strided_conv(h, stage), stage.norm))
            out[first:last] = h
        return out

    @torch.inference_mode()
    def __call__(self, wavs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Prepared (S_i,) waveforms -> one (frames_i, hidden) tensor per item."""
        model = self.model
        features = [self.conv_features(w) for w in wavs]
        lengths = [f.shape[0] for f in features]
        projection = model.feature_projection
        h = _linear(
            _layer_norm(torch.cat(features), projection.layer_norm),
            projection.projection.weight,
            projection.projection.bias,
        )
        del features
        h = h + F.gelu(self.positional(h, lengths))
        for layer in model.encoder.layers:
            h = h + self._attention(_layer_norm(h, layer.layer_norm), layer.attention, lengths)
            feed_forward = layer.feed_forward
            inner = _linear(
                _layer_norm(h, layer.final_layer_norm),
                feed_forward.intermediate_dense.weight,
                feed_forward.intermediate_dense.bias,
                gelu=True,
            )
            h = h + _linear(inner, feed_forward.output_dense.weight, feed_forward.output_dense.bias)
        return list(torch.split(h, lengths))

    def _attention(self, x: torch.Tensor, attention: nn.Module, lengths: Sequence[int]) -> torch.Tensor:
        """Self-attention of each item over its own rows; projections over all rows at once."""
        q = _linear(x, attention.q_proj.weight, attention.q_proj.bias)
        k = _linear(x, attention.k_proj.weight, attention.k_proj.bias)
        v = _linear(x, attention.v_proj.weight, attention.v_proj.bias)
        heads = self.heads
        width = x.shape[1] // heads
        mixed = torch.empty_like(x)
        start = 0
        for n in lengths:
            rows = slice(start, start + n)
            q_i, k_i, v_i = (t[rows].view(n, heads, width).transpose(0, 1)[None] for t in (q, k, v))
            out = F.scaled_dot_product_attention(q_i, k_i, v_i)
            mixed[rows] = out[0].transpose(0, 1).reshape(n, heads * width)
            start += n
        return _linear(mixed, attention.out_proj.weight, attention.out_proj.bias)
