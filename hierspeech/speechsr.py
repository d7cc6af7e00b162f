"""SpeechSR: 16 kHz speech to 24 kHz or 48 kHz (the optional last stage of HierSpeech++).

One class for both released variants; which one is built follows the official ``config.json``
(``data.sampling_rate`` 24000 -> stretch x1.5, 48000 -> x3). The network:

    conv_pre (1 -> 32 channels, 16 kHz)  ->  linear interpolation to the output rate
    ->  mean of 3 AMP residual blocks (kernels 3/7/11, anti-aliased SnakeBeta)
    ->  anti-aliased SnakeBeta  ->  conv_post (32 -> 1)  ->  tanh

Output length: ``int(T * sampling_rate / 16000)`` (24k: ``int(1.5 T)``, 48k: ``3 T``), as upstream.
State-dict names and shapes equal the official checkpoints (prefix ``dec.``), which load strictly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hierspeech.checkpoint import build_and_load, check_checkpoint
from hierspeech.modules.alias_free import Activation1d
from hierspeech.modules.common import WNConv1d, get_padding
from hierspeech.modules.resize import apply_resize, resize_positions
from hierspeech.modules.scratch import reuse_scratch
from hierspeech.modules.snake import SnakeBeta

INPUT_SAMPLING_RATE = 16000


@dataclass(frozen=True)
class SpeechSRConfig:
    """The parts of the official SpeechSR ``config.json`` that define the network."""

    sampling_rate: int = 48000
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple[int, ...] = (3,)
    upsample_initial_channel: int = 32
    input_sampling_rate: int = INPUT_SAMPLING_RATE
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.upsample_rates) != 1:
            raise ValueError(
                f"SpeechSR has exactly one interpolation stage; config gives upsample_rates={self.upsample_rates}"
            )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes must have the same length")
        if self.sampling_rate <= self.input_sampling_rate:
            raise ValueError(
                f"sampling_rate {self.sampling_rate} must exceed the input rate {self.input_sampling_rate}"
            )

    @property
    def factor(self) -> float:
        """Output/input rate ratio: 1.5 for the 24 kHz model, 3.0 for the 48 kHz model."""
        return self.sampling_rate / self.input_sampling_rate

    @property
    def variant(self) -> str:
        """``"24k"`` or ``"48k"`` (from the output rate)."""
        return f"{self.sampling_rate // 1000}k"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpeechSRConfig:
        """From the official JSON layout (``{"data": {...}, "model": {...}, ...}``)."""
        try:
            model, audio = data["model"], data["data"]
            return cls(
                sampling_rate=int(audio["sampling_rate"]),
                resblock_kernel_sizes=tuple(int(k) for k in model["resblock_kernel_sizes"]),
                resblock_dilation_sizes=tuple(tuple(int(d) for d in ds) for ds in model["resblock_dilation_sizes"]),
                upsample_rates=tuple(int(u) for u in model["upsample_rates"]),
                upsample_initial_channel=int(model["upsample_initial_channel"]),
                extra=dict(data),
            )
        except KeyError as exc:
            raise ValueError(f"not a SpeechSR config: missing key {exc}") from exc

    @classmethod
    def from_json(cls, path: str | Path) -> SpeechSRConfig:
        """Read an official SpeechSR ``config.json``."""
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))


class AMPBlock(nn.Module):
    """Residual block of anti-aliased SnakeBeta + dilated conv pairs (official ``AMPBlock0``).

    ``x <- x + conv2(act(conv1_d(act(x))))`` for each dilation ``d``; length-preserving.
    """

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, dilation=d, padding=get_padding(kernel_size, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, padding=get_padding(kernel_size)) for _ in dilations
        )
        self.activations = nn.ModuleList(
            Activation1d(SnakeBeta(channels, alpha_logscale=True)) for _ in range(2 * len(dilations))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)."""
        inplace = not torch.is_grad_enabled()
        for i, (conv1, conv2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            # Activation outputs go straight into a convolution, so they may live in scratch memory.
            y = conv1(self.activations[2 * i](x, scratch_output=inplace))
            y = conv2(self.activations[2 * i + 1](y, scratch_output=inplace))
            x = y.add_(x) if inplace else y + x
        return x

    def radius(self) -> int:
        """Samples of context each output needs on either side (same on both sides)."""
        total = 0
        for i, (conv1, conv2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            total += activation_radius(self.activations[2 * i]) + conv_radius(conv1)
            total += activation_radius(self.activations[2 * i + 1]) + conv_radius(conv2)
        return total


def conv_radius(conv: nn.Conv1d) -> int:
    """Context of a stride-1 'same' convolution on each side."""
    return conv.dilation[0] * (conv.kernel_size[0] - 1) // 2


def activation_radius(act: Activation1d) -> int:
    """Input samples on either side that one output of an `Activation1d` depends on (max of both sides).

    Upsampled sample ``n`` reads padded inputs ``s - pad .. s`` with ``s = (n + o) // r``,
    ``o = (K_up - r) // 2``; output ``k`` reads upsampled ``r k - pad_left .. r k + K_down - 1 - pad_left``.
    """
    up, low = act.upsample, act.downsample.lowpass
    r, off = up.ratio, (up.kernel_size - up.ratio) // 2
    k = 10 * r * (up.kernel_size + low.kernel_size)  # any output far from both ends
    first = (r * k - low.pad_left + off) // r - up.pad
    last = (r * k + low.kernel_size - 1 - low.pad_left + off) // r
    return max(k - first, last - k)


class SpeechSRGenerator(nn.Module):
    """The official ``dec`` module. Split in two halves so windows of a long signal can be processed."""

    def __init__(self, config: SpeechSRConfig) -> None:
        super().__init__()
        channels = config.upsample_initial_channel
        self.factor = config.factor
        self.conv_pre = WNConv1d(1, channels, 7, padding=3)
        self.resblocks = nn.ModuleList(
            AMPBlock(channels, k, d)
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True)
        )
        self.activation_post = Activation1d(SnakeBeta(channels, alpha_logscale=True))
        self.conv_post = nn.Conv1d(channels, 1, 7, padding=3, bias=False)

    def output_length(self, length: int) -> int:
        """Output samples for `length` input samples (``int(length * factor)``, as upstream)."""
        return int(length * self.factor)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Output-rate half: (B, C, L) hidden features -> (B, 1, L) waveform in [-1, 1]."""
        inplace = not torch.is_grad_enabled()
        out = self.resblocks[0](z)
        for block in self.resblocks[1:]:
            out = out.add_(block(z)) if inplace else out + block(z)
        out = out.div_(len(self.resblocks)) if inplace else out / len(self.resblocks)
        out = self.conv_post(self.activation_post(out, scratch_output=inplace))
        return out.tanh_() if inplace else torch.tanh(out)

    def radius(self) -> int:
        """Context (output-rate samples, each side) that `decode` needs for one output sample."""
        return (
            max(block.radius() for block in self.resblocks)
            + activation_radius(self.activation_post)
            + conv_radius(self.conv_post)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) at 16 kHz -> (B, 1, int(T * factor))."""
        length = x.shape[-1]
        n_out = self.output_length(length)
        h = self.conv_pre(x)
        left, right, w_left, w_right = resize_positions(length, n_out, 0, n_out, x.device)
        with reuse_scratch():
            return self.decode(apply_resize(h, left, right, w_left, w_right))


class SpeechSR(nn.Module):
    """SpeechSR super-resolution, 16 kHz -> 24 kHz or 48 kHz, state-dict compatible with the official files."""

    def __init__(self, config: SpeechSRConfig) -> None:
        super().__init__()
        self.config = config
        self.dec = SpeechSRGenerator(config)

    @classmethod
    def from_config(cls, config: SpeechSRConfig) -> SpeechSR:
        """Build with random weights (alias-free filters are computed, as in the checkpoints)."""
        return cls(config)

    @classmethod
    def from_pretrained(cls, path: str | Path, config: SpeechSRConfig | str | Path | None = None) -> SpeechSR:
        """Load an official ``G_*.pth`` (``{'model': state_dict, ...}``) strictly, on CPU, in eval mode.

        `config`: a SpeechSRConfig, a path to its config.json, or None for the ``config.json`` beside the
        checkpoint. Safe to call inside ``torch.inference_mode()``.
        """
        config = cls._resolve_config(path, config)
        return build_and_load(lambda: cls.from_config(config), path, container_key="model")

    @classmethod
    def check_pretrained(cls, path: str | Path, config: SpeechSRConfig | str | Path | None = None) -> None:
        """Raise what `from_pretrained` would raise, at a fraction of its cost (keys and shapes only)."""
        config = cls._resolve_config(path, config)
        check_checkpoint(lambda: cls.from_config(config), path, container_key="model")

    @staticmethod
    def _resolve_config(path: str | Path, config: SpeechSRConfig | str | Path | None) -> SpeechSRConfig:
        if isinstance(config, SpeechSRConfig):
            return config
        if config is None:
            config = Path(path).with_name("config.json")
            if not config.is_file():
                raise FileNotFoundError(
                    f"no config.json beside {path}; pass config= (the official speechsr config.json)"
                )
        return SpeechSRConfig.from_json(config)

    @property
    def sampling_rate(self) -> int:
        """Output sampling rate in Hz."""
        return self.config.sampling_rate

    def output_length(self, length: int) -> int:
        """Output samples for `length` input samples: ``int(1.5 T)`` (24k) or ``3 T`` (48k)."""
        return self.dec.output_length(length)

    def receptive_radius(self) -> int:
        """Output-rate samples of context on each side that one output of the output-rate half needs."""
        return self.dec.radius()

    def fuse_weight_norm(self) -> SpeechSR:
        """Inference only: compute every weight-normed conv weight once (state dict unchanged)."""
        for module in self.modules():
            if isinstance(module, WNConv1d):
                module.fuse_weight_norm()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) float32 at 16 kHz -> (B, 1, T_out) at `sampling_rate`, values in [-1, 1]."""
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"SpeechSR expects (B, 1, T) audio, got shape {tuple(x.shape)}")
        return self.dec(x)
