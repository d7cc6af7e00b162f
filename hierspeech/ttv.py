"""TTV (text-to-vec): phoneme ids + a mel prompt -> w2v features (MMS layer 7) and log-F0.

State-dict compatible with the official `ttv_v1.t2w2v_transformer.SynthesizerTrn` (`ttv_lt960_ckpt.pth`,
a raw state dict). Inference follows the official `infer_noise_control`:

    style g <- StyleEncoder(mel prompt), optionally blended with the style of a denoised prompt
    (x, m_p, logs_p) <- TextEncoder(tokens, g)
    log-durations <- StochasticDurationPredictor(x, g, noise * noise_scale_w)
    frames <- ceil(exp(logw) * length_scale); m_p, logs_p repeated per frame
    z <- flow^-1(m_p + noise * exp(logs_p) * noise_scale, g)
    w2v <- W2VDecoder(z, g); log-F0 <- PitchPredictor(w2v, g)  (4 F0 frames per w2v frame)

Unlike the official model, a batch may hold token sequences (and prompts) of different lengths: every
stage is masked, so each item gets what it would get alone. The two random draws can be injected
(`noise`) or drawn from a per-call or per-item `generator`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from hierspeech.config import ConfigReader, ModelConfig, field_names
from hierspeech.modules.alignment import expand_to_frames
from hierspeech.modules.duration import StochasticDurationPredictor
from hierspeech.modules.flows import TransformerCouplingBlock
from hierspeech.modules.masking import frame_mask
from hierspeech.modules.noise import standard_normal
from hierspeech.modules.pitch import PitchPredictor
from hierspeech.modules.style_encoder import StyleEncoder, blend_styles
from hierspeech.modules.text_encoder import TextEncoder
from hierspeech.modules.w2v_decoder import W2VDecoder, W2VPosteriorEncoder
from hierspeech.pretrained import PretrainedModel

Generators = torch.Generator | Sequence[torch.Generator] | None


@dataclass(frozen=True)
class TTVConfig(ModelConfig):
    """TTV hyper-parameters: the `model` section of the official TTV config.json plus the sizes the
    official code hard-codes (their defaults are the released model's; the section may set them too).

    `spec_channels` and `segment_size` are the two positional arguments the official inference takes
    from the SYNTHESIZER's config (`filter_length // 2 + 1`, `segment_size // hop_length`); like most
    `model` fields (`filter_channels`, `n_heads`, `n_layers`, `kernel_size`, `resblock*`, ...) the
    official model accepts and ignores them. They are kept so a config round-trips.
    """

    KIND: ClassVar[str] = "TTV"

    spec_channels: int = 641
    segment_size: int = 192
    inter_channels: int = 256
    hidden_channels: int = 256
    filter_channels: int = 1024
    n_heads: int = 4
    n_layers: int = 6
    kernel_size: int = 3
    p_dropout: float = 0.1
    resblock: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    use_spectral_norm: bool = False
    gin_channels: int = 256
    prosody_size: int = 20
    cfg: bool = False
    # Sizes fixed in the official code (not in its JSON).
    n_vocab: int = 178
    w2v_channels: int = 1024
    mel_channels: int = 80
    style_hidden_channels: int = 256
    text_n_heads: int = 4
    text_n_layers: int = 3
    text_kernel_size: int = 9
    text_p_dropout: float = 0.2
    posterior_n_layers: int = 16
    flow_n_layers: int = 3
    flow_n_heads: int = 4
    n_flows: int = 4
    decoder_n_layers: int = 8
    pitch_channels: int = 256

    def __post_init__(self) -> None:
        self._freeze_sequences("resblock_kernel_sizes", "resblock_dilation_sizes")

    @classmethod
    def _read(
        cls, reader: ConfigReader, synthesizer_config: str | Path | Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        values = reader.take_fields("model", field_names(cls))
        if synthesizer_config is not None:
            synth = (
                synthesizer_config
                if isinstance(synthesizer_config, Mapping)
                else json.loads(Path(synthesizer_config).read_text(encoding="utf-8"))
            )
            data, train = synth["data"], synth.get("train")
            values.setdefault("spec_channels", int(data["filter_length"]) // 2 + 1)
            if train is not None:
                values.setdefault("segment_size", int(train["segment_size"]) // int(data["hop_length"]))
        return values

    @classmethod
    def from_json(
        cls, path: str | Path, synthesizer_config: str | Path | Mapping[str, Any] | None = None
    ) -> TTVConfig:
        """Read the official TTV config.json; `synthesizer_config` (path or parsed content) supplies
        `spec_channels`/`segment_size` as the official inference does (defaults: the released synthesizer)."""
        return super().from_json(path, synthesizer_config=synthesizer_config)


@dataclass
class TTVOutput:
    """Result of `TTV.infer` for a batch of B items.

    w2v (B, w2v_channels, T) and log_f0 (B, 1, 4T) are zero past each item's length;
    lengths (B,) are w2v frames (F0 frames: `lengths * f0_per_frame`); log_durations and durations
    (B, 1, T_text) are the predicted log-durations and their rounded-up frame counts (official `w_ceil`).
    """

    w2v: torch.Tensor
    log_f0: torch.Tensor
    lengths: torch.Tensor
    log_durations: torch.Tensor
    durations: torch.Tensor
    f0_per_frame: int = 4


def zero_low_log_f0(log_f0: torch.Tensor, min_hz: float = 55.0) -> torch.Tensor:
    """Set log-F0 values below log(min_hz) to 0 (unvoiced), as the official TTS script does before
    handing the TTV's F0 to the synthesizer. Returns a new tensor of the same shape."""
    return log_f0.masked_fill(log_f0 < math.log(min_hz), 0.0)


def _draw_noise(
    shape: tuple[int, ...],
    lengths: torch.Tensor,
    generator: Generators,
    like: torch.Tensor,
    duration: bool,
) -> torch.Tensor:
    """Standard-normal noise (B, C, T) on `like`'s device/dtype.

    One generator (or None = torch's global RNG): one draw of the whole padded shape, as the official
    code does (duration noise on the CPU first, like its `torch.randn(...).to(device)`; prior noise
    with the layout of its `randn_like(m_p)`). A sequence of generators: item b draws its own
    (1, C, lengths[b]) from its generator, zero-padded, so an item's noise does not depend on the batch
    it is in (batched with [gen] == the single call with gen).
    """
    if generator is None or isinstance(generator, torch.Generator):
        # The official duration noise is drawn on the CPU, then moved (`torch.randn(...).to(device)`).
        home = torch.device("cpu") if duration and generator is None else like.device
        return standard_normal(shape, generator, home, like.dtype, time_major=not duration).to(like.device)
    if len(generator) != shape[0]:
        raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}")
    noise = like.new_zeros(shape)
    for b, gen in enumerate(generator):
        length = int(lengths[b])
        noise[b : b + 1, :, :length] = standard_normal(
            (1, shape[1], length), gen, like.device, like.dtype, time_major=not duration
        )
    return noise


def _take_noise(noise: torch.Tensor, shape: tuple[int, ...], name: str, like: torch.Tensor) -> torch.Tensor:
    """Crop injected noise (B, C, >= T) to `shape`, checking batch and channels."""
    if noise.dim() != 3 or noise.shape[:2] != shape[:2] or noise.size(2) < shape[2]:
        raise ValueError(f"injected {name} noise has shape {tuple(noise.shape)}, need (B, C, >= T) = {shape}")
    return noise[:, :, : shape[2]].to(device=like.device, dtype=like.dtype)


class TTV(PretrainedModel):
    """Text-to-vec model: phoneme ids (with blanks) + mel prompt -> w2v features and log-F0.

    Submodule names follow the official state dict: enc_q (training posterior, unused at inference),
    enc_p, flow, w2v_decoder, emb_g, dp, pp, phoneme_classifier (training only).
    """

    config_class = TTVConfig

    def __init__(self, config: TTVConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.enc_q = W2VPosteriorEncoder(
            c.w2v_channels,
            c.inter_channels,
            c.hidden_channels,
            5,
            1,
            c.posterior_n_layers,
            gin_channels=c.gin_channels,
        )
        self.enc_p = TextEncoder(
            c.n_vocab,
            out_channels=c.inter_channels,
            hidden_channels=c.inter_channels,
            filter_channels=c.inter_channels * 4,
            n_heads=c.text_n_heads,
            n_layers=c.text_n_layers,
            kernel_size=c.text_kernel_size,
            p_dropout=c.text_p_dropout,
            gin_channels=c.gin_channels,
        )
        self.flow = TransformerCouplingBlock(
            c.inter_channels,
            c.hidden_channels,
            5,
            1,
            c.flow_n_layers,
            n_flows=c.n_flows,
            gin_channels=c.gin_channels,
            n_heads=c.flow_n_heads,
        )
        self.w2v_decoder = W2VDecoder(
            c.inter_channels,
            c.inter_channels * 2,
            5,
            1,
            c.decoder_n_layers,
            output_size=c.w2v_channels,
            gin_channels=c.gin_channels,
            p_dropout=0.1,
        )
        self.emb_g = StyleEncoder(c.mel_channels, c.style_hidden_channels, c.gin_channels)
        self.dp = StochasticDurationPredictor(
            c.inter_channels, c.inter_channels, 3, 0.5, 4, gin_channels=c.gin_channels
        )
        self.pp = PitchPredictor(c.w2v_channels, c.gin_channels, c.pitch_channels)
        self.phoneme_classifier = nn.Conv1d(c.inter_channels, c.n_vocab, 1, bias=False)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        config: TTVConfig | str | Path | None = None,
        synthesizer_config: str | Path | Mapping[str, Any] | None = None,
    ) -> TTV:
        """Load an official TTV checkpoint (raw state dict, e.g. `ttv_lt960_ckpt.pth`) strictly, on CPU,
        eval mode (see `PretrainedModel`). `synthesizer_config` only feeds the two sizes the official
        model ignores."""
        return super().from_pretrained(path, config, synthesizer_config=synthesizer_config)

    @classmethod
    def check_pretrained(
        cls,
        path: str | Path,
        config: TTVConfig | str | Path | None = None,
        synthesizer_config: str | Path | Mapping[str, Any] | None = None,
    ) -> None:
        """Raise what `from_pretrained` would raise, at a fraction of its cost (keys and shapes only)."""
        super().check_pretrained(path, config, synthesizer_config=synthesizer_config)

    # ------------------------------------------------------------------ inference
    def style(self, mel: torch.Tensor, mel_lengths: torch.Tensor) -> torch.Tensor:
        """Style vector (B, gin, 1) of mel prompts (B, n_mels, T) with valid lengths (B,)."""
        return self.emb_g.embed(mel, mel_lengths)

    @torch.no_grad()
    def infer(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        g: torch.Tensor,
        noise_scale: float = 0.333,
        noise_scale_w: float = 1.0,
        length_scale: float = 1.0,
        generator: Generators = None,
        noise: Sequence[torch.Tensor | None] | None = None,
    ) -> TTVOutput:
        """Tokens (B, T_text) int64 with lengths (B,) and style g (B, gin, 1) -> `TTVOutput`.

        noise_scale scales the prior noise, noise_scale_w the duration noise (official defaults 0.333
        and 1; 0 and 0 make the call deterministic), length_scale stretches durations.
        `noise` = (duration noise (B, 2, >= T_text), prior noise (B, inter_channels, >= T_frames)), either
        may be None; standard-normal values, scaled here. Otherwise draws come from `generator`
        (see `_draw_noise`); with None they consume torch's global RNG exactly as the official code.
        """
        self._check_inputs(tokens, token_lengths, g)
        duration_noise, prior_noise = (None, None) if noise is None else tuple(noise)
        x, m_p, logs_p, x_mask = self.enc_p(tokens, token_lengths, g)

        dp_shape = (x.size(0), 2, x.size(2))
        if duration_noise is None:
            duration_noise = _draw_noise(dp_shape, token_lengths, generator, x, duration=True)
        else:
            duration_noise = _take_noise(duration_noise, dp_shape, "duration", x)
        logw = self.dp(x, x_mask, g=g, noise_scale=noise_scale_w, noise=duration_noise)

        w = torch.exp(logw) * x_mask * length_scale
        w_ceil = torch.ceil(w)
        frame_lengths = torch.clamp_min(torch.sum(w_ceil, [1, 2]), 1).long()
        num_frames = int(frame_lengths.max())
        y_mask = frame_mask(frame_lengths, num_frames, dtype=x_mask.dtype)
        m_p = expand_to_frames(m_p, w_ceil[:, 0], num_frames) * y_mask
        logs_p = expand_to_frames(logs_p, w_ceil[:, 0], num_frames) * y_mask

        prior_shape = tuple(m_p.shape)
        if prior_noise is None:
            prior_noise = _draw_noise(prior_shape, frame_lengths, generator, m_p, duration=False)
        else:
            prior_noise = _take_noise(prior_noise, prior_shape, "prior", m_p)
        z_p = m_p + prior_noise * torch.exp(logs_p) * noise_scale
        z = self.flow(z_p, y_mask, g=g, reverse=True)
        w2v = self.w2v_decoder(z, y_mask, g=g)
        log_f0 = self.pp(w2v, g, y_mask)
        return TTVOutput(w2v, log_f0, frame_lengths, logw, w_ceil, self.pp.upsample_factor)

    def _check_inputs(self, tokens: torch.Tensor, token_lengths: torch.Tensor, g: torch.Tensor) -> None:
        if tokens.dim() != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"tokens must be (B, T) integer ids, got {tuple(tokens.shape)} {tokens.dtype}")
        if token_lengths.shape != tokens.shape[:1]:
            raise ValueError(f"token_lengths must be ({tokens.size(0)},), got {tuple(token_lengths.shape)}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.config.n_vocab):
            raise ValueError(
                f"token ids must lie in [0, {self.config.n_vocab}), got {int(tokens.min())}..{int(tokens.max())}"
            )
        if bool((token_lengths > tokens.size(1)).any()) or bool((token_lengths < 1).any()):
            raise ValueError(f"token_lengths {token_lengths.tolist()} must lie in [1, {tokens.size(1)}]")
        if g.shape != (tokens.size(0), self.config.gin_channels, 1):
            raise ValueError(
                f"style g must be ({tokens.size(0)}, {self.config.gin_channels}, 1), got {tuple(g.shape)}"
            )

    def blended_style(
        self, y_mel: torch.Tensor, y_length: torch.Tensor, batch_size: int, denoise_ratio: float
    ) -> torch.Tensor:
        """Style (B, gin, 1) for `infer_noise_control`'s prompt layout.

        y_mel holds 2B prompts: the B originals, then the B denoised versions (official layout for B=1:
        [original, denoised]); g = (1 - denoise_ratio) * g_orig + denoise_ratio * g_denoised. With B
        prompts only (no denoised copy), denoise_ratio must be 0 (see `blend_styles`).
        """
        return blend_styles(self.style(y_mel, y_length), batch_size, denoise_ratio)

    @torch.no_grad()
    def infer_noise_control(
        self,
        x: torch.Tensor,
        x_lengths: torch.Tensor,
        y_mel: torch.Tensor,
        y_length: torch.Tensor,
        noise_scale: float = 0.333,
        noise_scale_w: float = 1.0,
        length_scale: float = 1.0,
        denoise_ratio: float = 0.0,
        *,
        generator: Generators = None,
        noise: Sequence[torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The official call: returns (w2v (B, 1024, T), log-F0 (B, 1, 4T)).

        x (B, T_text) token ids, x_lengths (B,), y_mel (2B, 80, T_mel) = originals then denoised
        prompts (see `blended_style`), y_length (2B,). The official pipeline afterwards zeroes
        log-F0 below log(55). For per-item output lengths use `infer` with `blended_style`.
        """
        g = self.blended_style(y_mel, y_length, x.size(0), denoise_ratio)
        out = self.infer(
            x, x_lengths, g, noise_scale, noise_scale_w, length_scale, generator=generator, noise=noise
        )
        return out.w2v, out.log_f0

    def forward(self, *args: Any, **kwargs: Any) -> TTVOutput:
        """Alias of `infer`."""
        return self.infer(*args, **kwargs)
