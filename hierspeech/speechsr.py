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

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from hierspeech.config import ConfigReader, ModelConfig, field_names
from hierspeech.modules.alias_free import Activation1d
from hierspeech.modules.amp_block import AMPBlock, multi_receptive_field, multi_receptive_field_radius
from hierspeech.modules.common import WNConv1d
from hierspeech.modules.receptive_field import activation_radius, conv_radius
from hierspeech.modules.resize import apply_resize, resize_positions
from hierspeech.modules.scratch import reuse_scratch
from hierspeech.modules.snake import SnakeBeta
from hierspeech.pretrained import PretrainedModel

INPUT_SAMPLING_RATE = 16000


@dataclass(frozen=True)
class SpeechSRConfig(ModelConfig):
    """SpeechSR hyper-parameters: ``data.sampling_rate`` and the ``model`` section of the official
    ``config.json``. `resblock`, `upsample_kernel_sizes` and `use_spectral_norm` are read so the
    section round-trips; the network does not use them (it always builds the official ``AMPBlock0``,
    interpolates instead of a transposed convolution, and has no discriminator)."""

    KIND: ClassVar[str] = "SpeechSR"

    sampling_rate: int = 48000
    resblock: str = "0"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple[int, ...] = (3,)
    upsample_initial_channel: int = 32
    upsample_kernel_sizes: tuple[int, ...] = (3,)
    use_spectral_norm: bool = False
    input_sampling_rate: int = INPUT_SAMPLING_RATE

    def __post_init__(self) -> None:
        self._freeze_sequences(
            "resblock_kernel_sizes", "resblock_dilation_sizes", "upsample_rates", "upsample_kernel_sizes"
        )
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
    def _read(cls, reader: ConfigReader) -> dict[str, Any]:
        model_fields = field_names(cls) - {"sampling_rate", "input_sampling_rate"}
        return {
            "sampling_rate": int(reader.take("data", "sampling_rate")),
            **reader.take_fields("model", model_fields),
        }


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
        out = multi_receptive_field(self.resblocks, z)
        out = self.conv_post(self.activation_post(out, scratch_output=inplace))
        return out.tanh_() if inplace else torch.tanh(out)

    def radius(self) -> int:
        """Context (output-rate samples, each side) that `decode` needs for one output sample."""
        return (
            multi_receptive_field_radius(self.resblocks)
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


class SpeechSR(PretrainedModel):
    """SpeechSR super-resolution, 16 kHz -> 24 kHz or 48 kHz, state-dict compatible with the official files.

    Loads the official ``G_*.pth`` (``{'model': state_dict, ...}``) through `PretrainedModel`'s doors.
    """

    config_class = SpeechSRConfig
    checkpoint_key = "model"

    def __init__(self, config: SpeechSRConfig) -> None:
        super().__init__()
        self.config = config
        self.dec = SpeechSRGenerator(config)

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) float32 at 16 kHz -> (B, 1, T_out) at `sampling_rate`, values in [-1, 1]."""
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"SpeechSR expects (B, 1, T) audio, got shape {tuple(x.shape)}")
        return self.dec(x)
