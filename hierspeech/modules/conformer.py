"""Conformer block of MP-SENet, with the attention axis made explicit.

MP-SENet's conformers were trained with `nn.MultiheadAttention(batch_first=False)` fed batch-first
tensors, so the axis they attend over is not the axis their convolution runs along:

- the block called ``time_conformer`` convolves along time but attends across frequency bins
  (separately for every frame);
- the block called ``freq_conformer`` convolves along frequency but attends across all time frames
  of the utterance (separately for every frequency bin).

That per-item computation is what the released weights expect, so it is reproduced here exactly, on
tensors laid out (B, T, F, C) with the batch kept apart: items never attend to each other, and a
frame mask makes padded frames invisible to the attention over time and to the convolution along time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TIME_AXIS, FREQ_AXIS = 1, 2

# Upper bound on attention scores held at once (floats); larger problems are split in exact blocks.
ATTENTION_BLOCK_ELEMENTS = 1 << 24
# Positions (T*F cells) a conformer stage processes at once. Every stage is row-wise or works on
# independent frames / bins, so blocking changes no result (the same kernels on the same rows) while
# the intermediates (up to 4x the width) stay small: large fresh tensors cost page faults on CPU
# (glibc maps them anew every time) and miss the caches.
POSITIONS_PER_BLOCK = 2048


def _spans(length: int, positions_per_step: int) -> list[slice]:
    """Consecutive slices of range(length) holding about POSITIONS_PER_BLOCK positions each."""
    step = max(1, POSITIONS_PER_BLOCK // max(1, positions_per_step))
    return [slice(i, min(i + step, length)) for i in range(0, length, step)]


def blocked_attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None) -> Tensor:
    """Softmax attention computed in row blocks so the score matrix never exceeds a fixed size.

    q, k, v: (N, H, L, D); key_mask: (N, 1, 1, L) bool, True where a key takes part. Every query row
    is normalised on its own, so splitting rows and queries into blocks changes nothing but memory.
    """
    n, h, length, _ = q.shape
    per_row = h * length * k.shape[2]
    if n * per_row <= ATTENTION_BLOCK_ELEMENTS:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
    out = torch.empty_like(q)
    rows = max(1, ATTENTION_BLOCK_ELEMENTS // per_row)
    queries = max(1, ATTENTION_BLOCK_ELEMENTS // (rows * h * k.shape[2]))
    for r in range(0, n, rows):
        mask = None if key_mask is None else key_mask[r : r + rows]
        for s in range(0, length, queries):
            out[r : r + rows, :, s : s + queries] = F.scaled_dot_product_attention(
                q[r : r + rows, :, s : s + queries], k[r : r + rows], v[r : r + rows], attn_mask=mask
            )
    return out


class SelfAttention(nn.Module):
    """Multi-head self-attention with `nn.MultiheadAttention`'s parameter names (inference only)."""

    def __init__(self, dim: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """(N, L, C) -> (N, L, C), attending along L; key_mask (N, 1, 1, L) bool or None."""
        n, length, dim = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.view(n, length, 3, self.n_head, dim // self.n_head).permute(2, 0, 3, 1, 4)
        out = blocked_attention(qkv[0], qkv[1], qkv[2], key_mask)
        return self.out_proj(out.transpose(1, 2).reshape(n, length, dim))


class AttentionModule(nn.Module):
    """Pre-norm self-attention along one axis of a (B, T, F, C) tensor."""

    def __init__(self, dim: int, n_head: int, axis: int) -> None:
        super().__init__()
        self.axis = axis
        self.attn = SelfAttention(dim, n_head)
        self.layernorm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, frame_mask: Tensor | None = None) -> Tensor:
        """(B, T, F, C) -> (B, T, F, C); frame_mask (B, T) bool hides padded frames as keys."""
        b, t, f, c = x.shape
        x = self.layernorm(x)
        if self.axis == FREQ_AXIS:
            return self.attn(x.reshape(b * t, f, c)).view(b, t, f, c)
        key_mask = None
        if frame_mask is not None:
            key_mask = frame_mask[:, None, None, None, :].expand(b, f, 1, 1, t).reshape(b * f, 1, 1, t)
        out = self.attn(x.transpose(1, 2).reshape(b * f, t, c), key_mask)
        return out.view(b, f, t, c).transpose(1, 2)


class FeedForwardModule(nn.Module):
    """LayerNorm -> Linear(C, mult*C) -> SiLU -> Linear(mult*C, C), position-wise on (..., C)."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        # Index 3 held a dropout in training; the Identity keeps the official parameter indices.
        self.ffm = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, dim * mult), nn.SiLU(), nn.Identity(), nn.Linear(dim * mult, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) -> (..., C)."""
        return self.ffm(x)


class ConvModule(nn.Module):
    """Conformer convolution module (pointwise + GLU, depthwise, BatchNorm, SiLU, pointwise) along one axis."""

    def __init__(self, dim: int, axis: int, expansion_factor: int = 2, kernel_size: int = 31) -> None:
        super().__init__()
        self.axis = axis
        inner = dim * expansion_factor
        # Official indices: 0 norm, 2 pointwise in, 4 depthwise, 5 batch norm, 7 pointwise out
        # (1 and 8 were layout changes, 3 the GLU, 6 the SiLU).
        self.ccm = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Identity(),
            nn.Conv1d(dim, inner * 2, 1),
            nn.GLU(dim=-1),
            nn.Conv1d(inner, inner, kernel_size, padding=(kernel_size - 1) // 2, groups=inner),
            nn.BatchNorm1d(inner),
            nn.SiLU(),
            nn.Conv1d(inner, dim, 1),
        )

    def forward(self, x: Tensor, frame_mask: Tensor | None = None) -> Tensor:
        """(B, T, F, C) -> (B, T, F, C); frame_mask (B, T) bool zeroes padded frames before the time conv.

        The depthwise convolution runs as a 2-D one with a (K, 1) or (1, K) kernel on a (B, C', T, F)
        view of the channels-last activations: no transposed copies, and oneDNN's channels-last
        depthwise kernel, an order of magnitude faster on CPU than the (B*F, C', T) 1-D layout and
        bit-identical to it.
        """
        norm, pointwise_in, glu, depthwise, batch_norm, act, pointwise_out = (self.ccm[i] for i in (0, 2, 3, 4, 5, 6, 7))
        h = glu(F.linear(norm(x), pointwise_in.weight.squeeze(-1), pointwise_in.bias))
        if self.axis == TIME_AXIS and frame_mask is not None:
            h = h * frame_mask[:, :, None, None].to(h.dtype)
        size = depthwise.kernel_size[0]
        kernel = (size, 1) if self.axis == TIME_AXIS else (1, size)
        padding = (depthwise.padding[0], 0) if self.axis == TIME_AXIS else (0, depthwise.padding[0])
        h = F.conv2d(
            h.permute(0, 3, 1, 2), depthwise.weight.view(-1, 1, *kernel), depthwise.bias,
            padding=padding, groups=depthwise.groups,
        )  # fmt: skip
        h = F.batch_norm(
            h, batch_norm.running_mean, batch_norm.running_var, batch_norm.weight, batch_norm.bias,
            batch_norm.training, batch_norm.momentum, batch_norm.eps,
        )  # fmt: skip
        h = act(h).permute(0, 2, 3, 1)
        return F.linear(h, pointwise_out.weight.squeeze(-1), pointwise_out.bias)


class ConformerBlock(nn.Module):
    """Macaron conformer block: half FFN, attention along `attend_axis`, conv along `conv_axis`, half FFN, norm."""

    def __init__(self, dim: int, n_head: int, attend_axis: int, conv_axis: int, kernel_size: int = 31) -> None:
        super().__init__()
        self.ffm1 = FeedForwardModule(dim)
        self.attn = AttentionModule(dim, n_head, attend_axis)
        self.ccm = ConvModule(dim, conv_axis, kernel_size=kernel_size)
        self.ffm2 = FeedForwardModule(dim)
        self.post_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, frame_mask: Tensor | None = None, residual: bool = False) -> Tensor:
        """(B, T, F, C) -> (B, T, F, C), plus x itself when `residual` (the two-stage block's skip connection).

        x + ffm1/2, + attention, + convolution, then the norm, stage after stage over blocks of frames
        (or of frequency bins, for the stages that look along time), in one new tensor updated in
        place: the first stage writes x + ffm1/2 into it and the last writes the norm (+ x) back over
        each block, so there is no copy of x and no separate pass for the skip connection.
        """
        b, t, f, _ = x.shape
        frames, bins = _spans(t, b * f), _spans(f, b * t)
        y = torch.empty_like(x)
        for span in frames:
            torch.add(x[:, span], self.ffm1(x[:, span]), alpha=0.5, out=y[:, span])
        for span in frames if self.attn.axis == FREQ_AXIS else bins:
            cells = (slice(None), span) if self.attn.axis == FREQ_AXIS else (slice(None), slice(None), span)
            y[cells].add_(self.attn(y[cells], frame_mask))
        for span in frames if self.ccm.axis == FREQ_AXIS else bins:
            cells = (slice(None), span) if self.ccm.axis == FREQ_AXIS else (slice(None), slice(None), span)
            y[cells].add_(self.ccm(y[cells], frame_mask))
        for span in frames:
            block = y[:, span]
            block.add_(self.ffm2(block), alpha=0.5)
            if residual:
                torch.add(self.post_norm(block), x[:, span], out=block)
            else:
                block.copy_(self.post_norm(block))
        return y


class TSConformerBlock(nn.Module):
    """Two-stage conformer: ``time_conformer`` then ``freq_conformer``, each with a residual connection."""

    def __init__(self, dim: int, n_head: int = 4, kernel_size: int = 31) -> None:
        super().__init__()
        self.time_conformer = ConformerBlock(dim, n_head, attend_axis=FREQ_AXIS, conv_axis=TIME_AXIS, kernel_size=kernel_size)
        self.freq_conformer = ConformerBlock(dim, n_head, attend_axis=TIME_AXIS, conv_axis=FREQ_AXIS, kernel_size=kernel_size)

    def forward(self, x: Tensor, frame_mask: Tensor | None = None) -> Tensor:
        """(B, T, F, C) -> (B, T, F, C); frame_mask (B, T) bool or None."""
        x = self.time_conformer(x, frame_mask, residual=True)
        return self.freq_conformer(x, frame_mask, residual=True)
