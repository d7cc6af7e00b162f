"""HierSpeech++ hierarchical speech synthesizer: w2v features + F0 + a target voice -> 16 kHz speech.

State-dict compatible with the official `SynthesizerTrn` (hierspeechpp_speechsynthesizer.py). The
inference paths keep the official names and argument order; beyond the official code they:

- take explicit randomness (`noise=` to inject the prior noise, `generator=` to seed it per call),
- run ragged batches (items of different lengths): encoders and flows are masked, and the waveform
  decoder runs once per distinct length or, on CUDA, in padded buckets with exact tails
  (`hierspeech.vocoder_batching`), so every item equals its single-item result,
- accept batch B in `voice_conversion_noise_control` (target mels stacked as [B originals, B denoised]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from hierspeech.config import ConfigReader, ModelConfig, field_names
from hierspeech.mel_decoder import MelDecoder
from hierspeech.modules.flows import TransformerCouplingBlock
from hierspeech.modules.masking import frame_mask
from hierspeech.modules.noise import standard_normal
from hierspeech.modules.scratch import reuse_scratch
from hierspeech.modules.style_encoder import StyleEncoder, blend_styles
from hierspeech.posterior import PosteriorAudioEncoder, PosteriorSFEncoder
from hierspeech.pretrained import PretrainedModel
from hierspeech.vocoder import Generator, SourceNetwork
from hierspeech.vocoder_batching import vocode_bucketed, vocode_by_length

W2V_CHANNELS = 1024
F0_FRAMES_PER_W2V_FRAME = 4


@dataclass(frozen=True)
class SynthesizerConfig(ModelConfig):
    """Hyper-parameters of the synthesizer, as the official `inference.py` derives them from config.json:
    the ``model`` section, plus `spec_channels` (``data.filter_length // 2 + 1``), `segment_size`
    (``train.segment_size // data.hop_length``) and the rates of ``data``. `n_layers_q`,
    `use_spectral_norm` and `wav2vec_feature_layer` are official ``model`` keys the network does not
    use (the w2v layer is the front-end's, `hierspeech.w2v.FEATURE_LAYER`)."""

    KIND: ClassVar[str] = "synthesizer"

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
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple[int, ...] = (4, 5, 4, 2, 2)
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: tuple[int, ...] = (8, 11, 8, 4, 4)
    n_layers_q: int = 3
    use_spectral_norm: bool = False
    wav2vec_feature_layer: int = 7
    gin_channels: int = 256
    prosody_size: int = 20
    uncond_ratio: float = 0.0
    cfg: bool = False
    sampling_rate: int = 16000
    hop_length: int = 320
    n_mel_channels: int = 80

    def __post_init__(self) -> None:
        self._freeze_sequences(
            "resblock_kernel_sizes", "resblock_dilation_sizes", "upsample_rates", "upsample_kernel_sizes"
        )

    @classmethod
    def _read(cls, reader: ConfigReader) -> dict[str, Any]:
        hop_length = int(reader.take("data", "hop_length"))
        derived = {
            "spec_channels": int(reader.take("data", "filter_length")) // 2 + 1,
            "segment_size": int(reader.take("train", "segment_size")) // hop_length,
            "sampling_rate": int(reader.take("data", "sampling_rate")),
            "hop_length": hop_length,
            "n_mel_channels": int(reader.take("data", "n_mel_channels")),
        }
        return {**reader.take_fields("model", field_names(cls) - set(derived)), **derived}

    @property
    def samples_per_frame(self) -> int:
        """Output samples per w2v frame (product of the decoder's upsampling rates)."""
        return math.prod(self.upsample_rates)


class Synthesizer(PretrainedModel):
    """The official SynthesizerTrn's modules, with explicit-noise, batch-capable inference.

    Loads an official raw state-dict file (e.g. ``hierspeechpp_v2_ckpt.pth``) through `PretrainedModel`.
    """

    config_class = SynthesizerConfig

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

    # ----------------------------------------------------------------------------------------- inference

    def style(self, trg_mel: Tensor, trg_length: Tensor) -> Tensor:
        """Style vectors of target mels (B, 80, T') with lengths (B,) -> (B, gin, 1). Padding-invariant."""
        return self.emb_g.embed(trg_mel, trg_length)

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
            standard_normal(m_p.shape, generator, m_p.device, m_p.dtype)
            noise = standard_normal(m_p.shape, generator, m_p.device, m_p.dtype)
        elif noise.shape != m_p.shape:
            raise ValueError(f"noise must have shape {tuple(m_p.shape)} (B, C, T), got {tuple(noise.shape)}")
        z = (m_p + noise * torch.exp(logs_p) * noise_scale) * y_mask
        z = self.flow_l(z, y_mask, g=g, reverse=True)
        z = self.flow(z, y_mask, g=g, reverse=True)
        return z, y_mask

    def vocoder_radius(self) -> int:
        """Latent frames on either side that one output sample of `vocode` depends on (an upper bound,
        from the layers' kernels, dilations and rates; 95 for the released config)."""
        return math.ceil(self.dec.receptive_radius() + self.sn.receptive_radius()) + 1

    def vocode(
        self, z: Tensor, g: Tensor, lengths: Tensor | None = None, *, bucketed: bool | None = None
    ) -> Tensor:
        """Latent (B, C, T) + style (B, gin, 1) -> audio (B, 1, T * samples_per_frame), zero after each length.

        Each item equals its unpadded single-item result (to float rounding): ragged items run per
        distinct length, or with `bucketed` (default: on CUDA) in padded buckets whose shorter items'
        tails are rerun exactly (`hierspeech.vocoder_batching`).
        """
        if g.size(0) != z.size(0):
            g = g.expand(z.size(0), -1, -1)
        with reuse_scratch():
            if lengths is None or bool((lengths == z.size(2)).all()):
                return self._vocoder(z, g)
            hop = self.config.samples_per_frame
            if bucketed is None:
                bucketed = z.device.type == "cuda"
            if bucketed:
                return vocode_bucketed(self._vocoder, z, g, lengths.tolist(), hop, self.vocoder_radius())
            return vocode_by_length(self._vocoder, z, g, lengths, hop)

    def _vocoder(self, z: Tensor, g: Tensor) -> Tensor:
        """Source network + decoder on unpadded items: (B, C, T), (B, gin, 1) -> (B, 1, T * hop)."""
        e, _ = self.sn(z, g)
        return self.dec(z, e, g=g)

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
        bucketed_vocoder: bool | None = None,
    ) -> Tensor:
        """Convert w2v content to the voice of a target mel.

        src (B, 1024, T) w2v layer-7 features, src_length (B,), trg_mel (B, 80, T') log-mel of the target,
        trg_length (B,), f0 (B, 1, 4T) log(F0 + 1) (0 = unvoiced). `noise` (B, 192, T) replaces the
        standard-normal prior draw; otherwise it is drawn from `generator` (or torch's global RNG).
        `uncond` decodes with the null style (as the official code: the flows still use the target's).
        `bucketed_vocoder`: how a ragged batch is vocoded (see `vocode`; None: bucketed on CUDA).
        Returns audio (B, 1, T * 320), zero past each item's length.
        """
        g = self.style(trg_mel, trg_length)
        z, _ = self._prior_latent(src, src_length, f0, g, noise_scale, noise, generator)
        if uncond:
            g = self.null_style(z.size(0))
        return self.vocode(z, g, src_length, bucketed=bucketed_vocoder)

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
        bucketed_vocoder: bool | None = None,
    ) -> Tensor:
        """Voice conversion with a style interpolated between a target and its denoised version.

        trg_mel (2B, 80, T') holds the B original target mels followed by the B denoised ones (B = 1: the
        official [original, denoised] pair); trg_length (2B,). The style is
        (1 - denoise_ratio) * g_original + denoise_ratio * g_denoised (`blend_styles`). `uncond` is
        accepted and, as in the official code, has no effect here. Other arguments and the output as in
        `voice_conversion`.
        """
        del uncond  # the official method computes a null style and never uses it
        g = blend_styles(self.style(trg_mel, trg_length), src.size(0), denoise_ratio, unpaired=False)
        z, _ = self._prior_latent(src, src_length, f0, g, noise_scale, noise, generator)
        return self.vocode(z, g, src_length, bucketed=bucketed_vocoder)
