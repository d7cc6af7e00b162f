"""Style encoder: a mel prompt -> one global speaker/style vector (official `styleencoder.py` layout).

Unlike the official module this one is padding-invariant: the two gated convolutions are masked between
each other and the temporal average runs over valid frames only, so a padded item of a batch gets the
same vector as the item alone. With no padding the result is the official one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from hierspeech.modules.attention import MultiHeadAttention
from hierspeech.modules.masking import frame_mask


class Mish(nn.Module):
    """x * tanh(softplus(x))."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.tanh(F.softplus(x))


class Conv1dGLU(nn.Module):
    """Residual gated linear unit over a same-padded convolution. (B, C, T) -> (B, C, T)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = nn.Conv1d(in_channels, 2 * out_channels, kernel_size, padding=(kernel_size - 1) // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.conv1(x).split(self.out_channels, dim=1)
        return x + self.dropout(a * torch.sigmoid(b))


class StyleEncoder(nn.Module):
    """Mel (B, in_dim, T) + mask (B, 1, T) -> style vector (B, out_dim)."""

    def __init__(
        self, in_dim: int = 80, hidden_dim: int = 256, out_dim: int = 256, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.spectral = nn.Sequential(
            nn.Conv1d(in_dim, hidden_dim, 1),
            Mish(),
            nn.Dropout(dropout),
            nn.Conv1d(hidden_dim, hidden_dim, 1),
            Mish(),
            nn.Dropout(dropout),
        )
        self.temporal = nn.Sequential(
            Conv1dGLU(hidden_dim, hidden_dim, 5, dropout),
            Conv1dGLU(hidden_dim, hidden_dim, 5, dropout),
        )
        self.slf_attn = MultiHeadAttention(hidden_dim, hidden_dim, 2, p_dropout=dropout, proximal_init=True)
        self.atten_drop = nn.Dropout(dropout)
        self.fc = nn.Conv1d(hidden_dim, out_dim, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (B, in_dim, T), mask (B, 1, T) float (None: all frames valid) -> (B, out_dim)."""
        if mask is None:
            mask = x.new_ones(x.size(0), 1, x.size(2))
        x = self.spectral(x) * mask
        for glu in self.temporal:
            x = glu(x) * mask
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        x = x + self.atten_drop(self.slf_attn(x, x, attn_mask=attn_mask))
        x = self.fc(x)
        return (x * mask).sum(dim=2) / mask.sum(dim=2)

    def embed(self, mel: Tensor, lengths: Tensor) -> Tensor:
        """Style vectors of mel prompts (B, in_dim, T) with valid lengths (B,) -> (B, out_dim, 1)."""
        return self(mel, frame_mask(lengths, mel.size(2), mel.dtype)).unsqueeze(-1)


def blend_styles(styles: Tensor, batch: int, denoise_ratio: float, *, unpaired: bool = True) -> Tensor:
    """The prompt style of HierSpeech++'s noise control, (B, gin, 1).

    `styles` (2B, gin, 1) are B originals then their B denoised versions (the official layout for B = 1:
    [original, denoised]): ``(1 - denoise_ratio) * original + denoise_ratio * denoised``. With `unpaired`,
    B styles alone (no denoised copy) are accepted when ``denoise_ratio == 0``.
    """
    if styles.size(0) == 2 * batch:
        return (1 - denoise_ratio) * styles[:batch] + denoise_ratio * styles[batch:]
    if unpaired and styles.size(0) == batch and denoise_ratio == 0:
        return styles
    alone = ", or B prompts with denoise_ratio=0" if unpaired else "; without a denoiser pass each original twice"
    raise ValueError(
        f"got {styles.size(0)} prompts for a batch of {batch}: pass 2B prompts (the originals, then their "
        f"denoised versions){alone}"
    )
