"""HierSpeech++ hierarchical speech synthesizer: w2v features + F0 + a target voice -> 16 kHz speech.

State-dict compatible with the official `SynthesizerTrn` (hierspeechpp_speechsynthesizer.py). The
inference paths keep the official names and argument order; beyond the official code they:

- take explicit randomness (`noise=` to inject the prior noise, `generator=` to seed it per call),
- run ragged batches (items of different lengths): encoders and flows are masked, and the waveform
  decoder runs once per distinct length, so every item equals its single-item result,
- accept batch B in `voice_conversion_noise_control` (target mels stacked as [B originals, B denoised]).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hierspeech.checkpoint import build_and_load, check_checkpoint
from hierspeech.mel_decoder import MelDecoder
from hierspeech.modules.flows import TransformerCouplingBlock
from hierspeech.modules.masking import frame_mask
from hierspeech.modules.scratch import reuse_scratch
from hierspeech.modules.style_encoder import StyleEncoder
from hierspeech.posterior import PosteriorAudioEncoder, PosteriorSFEncoder
from hierspeech.vocoder import Generator, SourceNetwork

W2V_CHANNELS = 1024
F0_FRAMES_PER_W2V_FRAME = 4


@dataclass
class SynthesizerConfig:
    """Hyper-parameters of the synthesizer, as the official `inference.py` derives them from config.json."""

    spec_channels: int = 641
    segment_size: int = 192
    inter_channels: int = 192
    hidden_channels: int = 192
    filter_channels: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel_size: int = 3
    p_dropout: float = 0.1
    resblock: str = "1"
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(default_factory=lambda: [[1, 3, 5]] * 3)
    upsample_rates: list[int] = field(default_factory=lambda: [4, 5, 4, 2, 2])
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [8, 11, 8, 4, 4])
    gin_channels: int = 256
    prosody_size: int = 20
    uncond_ratio: float = 0.0
    cfg: bool = False
    sampling_rate: int = 16000
    hop_length: int = 320
    n_mel_channels: int = 80
    # Keys of the official "model" section that the network does not use (n_layers_q, ...).
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> SynthesizerConfig:
        """From the official config.json content (sections "data", "train", "model")."""
        data, train, model = config["data"], config["train"], dict(config["model"])
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in model.items() if k in names}
        extra = {k: v for k, v in model.items() if k not in names}
        return cls(
            spec_channels=data["filter_length"] // 2 + 1,
            segment_size=train["segment_size"] // data["hop_length"],
            sampling_rate=data["sampling_rate"],
            hop_length=data["hop_length"],
            n_mel_channels=data["n_mel_channels"],
            extra=extra,
            **known,
        )

    @classmethod
    def from_json(cls, path: str | Path) -> SynthesizerConfig:
        """Read an official config.json."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    @property
    def samples_per_frame(self) -> int:
        """Output samples per w2v frame (product of the decoder's upsampling rates)."""
        return math.prod(self.upsample_rates)


class Synthesizer(nn.Module):
    """The official SynthesizerTrn's modules, with explicit-noise, batch-capable inference."""

    def __init__(self, config: SynthesizerConfig) -> None:
        super().__init__()
        c = config
        self.config = config
        self.enc_p_l = PosteriorSFEncoder(
            W2V_CHANNELS, c.inter_channels, c.hidden_channels, 5, 1, 16, c.gin_channels
        )
        self.flow_l = TransformerCouplingBlock(
            c.inter_channels, c.hidden_channels, 5, 1, 3, gin_channels=c.gin_channels
        )
        self.enc_p = PosteriorSFEncoder(
            W2V_CHANNELS, c.inter_channels, c.hidden_channels, 5, 1, 16, c.gin_channels
        )
        self.enc_q = PosteriorAudioEncoder(
            c.spec_channels, c.inter_channels, c.hidden_channels, 5, 1, 16, gin_channels=c.gin_channels
        )
        self.flow = TransformerCouplingBlock(
            c.inter_channels, c.hidden_channels, 5, 1, 3, gin_channels=c.gin_channels
        )
        self.mel_decoder = MelDecoder(
            c.inter_channels,
            c.filter_channels,
            2,
            2,
            5,
            0.1,
            mel_size=c.prosody_size,
            gin_channels=c.gin_channels,
        )
        self.dec = Generator(
            c.inter_channels,
            c.resblock_kernel_sizes,
            c.resblock_dilation_sizes,
            c.upsample_rates,
            c.upsample_initial_channel,
            c.upsample_kernel_sizes,
            gin_channels=c.gin_channels,
        )
        self.sn = SourceNetwork(c.upsample_initial_channel // 2, c.inter_channels, c.gin_channels)
        self.emb_g = StyleEncoder(in_dim=c.n_mel_channels, hidden_dim=256, out_dim=c.gin_channels)
        if c.cfg:
            # Learned "unconditional" style for classifier-free guidance; row 0 is the null embedding.
            self.emb = nn.Embedding(1, c.gin_channels)
            nn.init.normal_(self.emb.weight, 0.0, c.gin_channels**-0.5)

    @classmethod
    def from_config(cls, config: SynthesizerConfig) -> Synthesizer:
        """Build with random weights, in eval mode."""
        return cls(config).eval()

    @classmethod
    def from_pretrained(
        cls, path: str | Path, config: SynthesizerConfig | str | Path | None = None
    ) -> Synthesizer:
        """Load an official raw state-dict file (e.g. hierspeechpp_v2_ckpt.pth) strictly, on CPU, eval().

        `config`: a SynthesizerConfig, a path to config.json, or None for the config.json beside `path`.
        Safe to call inside ``torch.inference_mode()`` (see `hierspeech.checkpoint.build_and_load`).
        """
        config = cls._resolve_config(path, config)
        return build_and_load(lambda: cls(config), path)

    @classmethod
    def check_pretrained(cls, path: str | Path, config: SynthesizerConfig | str | Path | None = None) -> None:
        """Raise what `from_pretrained` would raise, at a fraction of its cost (keys and shapes only)."""
        config = cls._resolve_config(path, config)
        check_checkpoint(lambda: cls(config), path)

    @staticmethod
    def _resolve_config(path: str | Path, config: SynthesizerConfig | str | Path | None) -> SynthesizerConfig:
        if isinstance(config, SynthesizerConfig):
            return config
        config_path = Path(config) if config is not None else Path(path).with_name("config.json")
        if not config_path.is_file():
            raise FileNotFoundError(f"synthesizer config not found: {config_path}; put config.json beside the checkpoint or pass config=")
        return SynthesizerConfig.from_json(config_path)

    def fuse_weight_norm(self) -> Synthesizer:
        """Inference speed-up: compute every weight-normed kernel once instead of at each call.

        Call it after moving the model to its device and after loading weights; returns self.
        """
        for module in self.modules():
            if hasattr(module, "fuse_weight_norm") and module is not self:
                module.fuse_weight_norm()
        return self

    # ----------------------------------------------------------------------------------------- inference

    def style(self, trg_mel: Tensor, trg_length: Tensor) -> Tensor:
        """Style vectors of target mels (B, 80, T') with lengths (B,) -> (B, gin, 1). Padding-invariant."""
        trg_mask = frame_mask(trg_length, trg_mel.size(2), trg_mel.dtype)
        return self.emb_g(trg_mel, trg_mask).unsqueeze(-1)

    def null_style(self, batch: int) -> Tensor:
        """The learned unconditional style (cfg models), (batch, gin, 1)."""
        if not self.config.cfg:
            raise ValueError("this synthesizer has no unconditional embedding (config cfg=false)")
        return (self.emb.weight[0] * math.sqrt(self.config.gin_channels)).view(1, -1, 1).expand(batch, -1, -1)

    def _prior_latent(
        self,
        src: Tensor,
        src_length: Tensor,
        f0: Tensor,
        g: Tensor,
        noise_scale: float,
        noise: Tensor | None,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor]:
        """Sample the acoustic latent from w2v + F0 and map it through both flows. -> (z (B, C, T), y_mask)."""
        y_mask = frame_mask(src_length, src.size(2), src.dtype)
        f0 = f0 * frame_mask(src_length * F0_FRAMES_PER_W2V_FRAME, f0.size(2), f0.dtype)
        m_p, logs_p = self.enc_p_l(src, f0, y_mask, g=g)
        if noise is None:
            # The official encoder first draws a sample it discards; drawing it too keeps torch's global
            # RNG stream identical to the official code (torch.manual_seed gives the official result).
            torch.randn(m_p.shape, generator=generator, device=m_p.device, dtype=m_p.dtype)
            noise = torch.randn(m_p.shape, generator=generator, device=m_p.device, dtype=m_p.dtype)
        elif noise.shape != m_p.shape:
            raise ValueError(f"noise must have shape {tuple(m_p.shape)} (B, C, T), got {tuple(noise.shape)}")
        z = (m_p + noise * torch.exp(logs_p) * noise_scale) * y_mask
        z = self.flow_l(z, y_mask, g=g, reverse=True)
        z = self.flow(z, y_mask, g=g, reverse=True)
        return z, y_mask

    def vocode(self, z: Tensor, g: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Latent (B, C, T) + style (B, gin, 1) -> audio (B, 1, T * samples_per_frame), zero after each length.

        Items are decoded in groups of equal length (the decoder's convolutions and anti-aliasing filters
        see past the end of a padded item), so each item equals its unpadded single-item result.
        """
        if g.size(0) != z.size(0):
            g = g.expand(z.size(0), -1, -1)
        with reuse_scratch():
            return self._vocode_groups(z, g, lengths)

    def _vocode_groups(self, z: Tensor, g: Tensor, lengths: Tensor | None) -> Tensor:
        if lengths is None or bool((lengths == z.size(2)).all()):
            e, _ = self.sn(z, g)
            return self.dec(z, e, g=g)
        hop = self.config.samples_per_frame
        out = z.new_zeros(z.size(0), 1, z.size(2) * hop)
        for length in torch.unique(lengths).tolist():
            idx = (lengths == length).nonzero(as_tuple=True)[0]
            z_i = z[idx, :, :length]
            e, _ = self.sn(z_i, g[idx])
            out[idx, :, : length * hop] = self.dec(z_i, e, g=g[idx])
        return out

    @torch.no_grad()
    def voice_conversion(
        self,
        src: Tensor,
        src_length: Tensor,
        trg_mel: Tensor,
        trg_length: Tensor,
        f0: Tensor,
        noise_scale: float = 0.333,
        uncond: bool = False,
        *,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Convert w2v content to the voice of a target mel.

        src (B, 1024, T) w2v layer-7 features, src_length (B,), trg_mel (B, 80, T') log-mel of the target,
        trg_length (B,), f0 (B, 1, 4T) log(F0 + 1) (0 = unvoiced). `noise` (B, 192, T) replaces the
        standard-normal prior draw; otherwise it is drawn from `generator` (or torch's global RNG).
        `uncond` decodes with the null style (as the official code: the flows still use the target's).
        Returns audio (B, 1, T * 320), zero past each item's length.
        """
        g = self.style(trg_mel, trg_length)
        z, _ = self._prior_latent(src, src_length, f0, g, noise_scale, noise, generator)
        if uncond:
            g = self.null_style(z.size(0))
        return self.vocode(z, g, src_length)

    @torch.no_grad()
    def voice_conversion_noise_control(
        self,
        src: Tensor,
        src_length: Tensor,
        trg_mel: Tensor,
        trg_length: Tensor,
        f0: Tensor,
        noise_scale: float = 0.333,
        uncond: bool = False,
        denoise_ratio: float = 0.0,
        *,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Voice conversion with a style interpolated between a target and its denoised version.

        trg_mel (2B, 80, T') holds the B original target mels followed by the B denoised ones (B = 1: the
        official [original, denoised] pair); trg_length (2B,). The style is
        (1 - denoise_ratio) * g_original + denoise_ratio * g_denoised. `uncond` is accepted and, as in the
        official code, has no effect here. Other arguments and the output as in `voice_conversion`.
        """
        del uncond  # the official method computes a null style and never uses it
        batch = src.size(0)
        if trg_mel.size(0) != 2 * batch:
            raise ValueError(
                f"trg_mel must stack {batch} original and {batch} denoised target mels ({2 * batch} items), "
                f"got {trg_mel.size(0)}; without a denoiser pass each original twice"
            )
        g = self.style(trg_mel, trg_length)
        g = (1 - denoise_ratio) * g[:batch] + denoise_ratio * g[batch:]
        z, _ = self._prior_latent(src, src_length, f0, g, noise_scale, noise, generator)
        return self.vocode(z, g, src_length)
