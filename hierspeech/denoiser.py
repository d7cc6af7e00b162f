"""MP-SENet speech denoiser as HierSpeech++ uses it on prompts, and the `denoise` front-to-back call.

`Denoiser` holds the official MPNet parameters (state dict of `denoiser/g_best`, 353 entries) and maps a
compressed magnitude / phase spectrogram to its denoised version. `denoise` does the whole job on audio:
RMS normalisation, STFT, the model, inverse STFT, de-normalisation. Compared with the official code it
batches items of different lengths exactly (each item gets what it would get alone), and it splits long
inputs into overlapping chunks so memory stays bounded (an approximation, see `denoise`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from hierspeech.config import ConfigReader, ModelConfig, field_names
from hierspeech.modules.conformer import TSConformerBlock
from hierspeech.modules.mag_phase_stft import complex_istft, compressed_to_complex, mag_phase_stft
from hierspeech.modules.mpsenet_blocks import DenseEncoder, MaskDecoder, PhaseDecoder
from hierspeech.pretrained import PretrainedModel

# Inputs up to this long run in one piece, exactly as the official code; longer ones are chunked.
DEFAULT_CHUNK_SECONDS = 4.0
DEFAULT_OVERLAP_SECONDS = 1.0


@dataclass(frozen=True)
class DenoiserConfig(ModelConfig):
    """The model and STFT fields of the official (flat) `denoiser/config.json`."""

    KIND: ClassVar[str] = "denoiser"
    SETTINGS: ClassVar[frozenset[str]] = frozenset(
        {"num_gpus", "batch_size", "learning_rate", "adam_b1", "adam_b2", "lr_decay", "seed", "num_workers",
         "dist_config"}
    )
    """The official file's training keys."""

    dense_channel: int = 64
    compress_factor: float = 0.3
    num_tsconformers: int = 4
    beta: float = 2.0
    sampling_rate: int = 16000
    segment_size: int = 32000
    n_fft: int = 400
    hop_size: int = 100
    win_size: int = 400

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    @classmethod
    def _read(cls, reader: ConfigReader) -> dict[str, Any]:
        return reader.take_fields(None, field_names(cls))


class Denoiser(PretrainedModel):
    """MP-SENet (MPNet): compressed magnitude and phase (B, F, N) -> denoised magnitude and phase.

    Loads the official ``{'generator': state_dict}`` file (``denoiser/g_best``) through `PretrainedModel`;
    without a config.json beside it, the released defaults are used. The official class always builds
    4 two-stage conformer blocks whatever `num_tsconformers` says; the released config says 4, and here
    the field is honoured.
    """

    config_class = DenoiserConfig
    checkpoint_key = "generator"
    config_optional = True

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.dense_channel
        self.dense_encoder = DenseEncoder(channels)
        self.TSConformer = nn.ModuleList(TSConformerBlock(channels) for _ in range(config.num_tsconformers))
        self.mask_decoder = MaskDecoder(channels, config.n_freq, config.beta)
        self.phase_decoder = PhaseDecoder(channels)
        self.register_buffer("window", torch.hann_window(config.win_size), persistent=False)

    def forward(
        self, mag: Tensor, pha: Tensor, frame_lengths: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Compressed magnitude and phase (B, F, N) -> denoised ones (B, F, N).

        `frame_lengths` (B,) marks the valid frames of a padded batch; outputs on padded frames are
        meaningless. Items never interact, so each valid frame equals the item's single-item result.
        """
        n_frames = mag.shape[-1]
        frame_mask = mask = None
        if frame_lengths is not None and bool((frame_lengths < n_frames).any()):
            frame_mask = torch.arange(n_frames, device=mag.device)[None, :] < frame_lengths[:, None]
            mask = frame_mask[:, None, :, None].to(mag.dtype)
        mag_in = mag.transpose(1, 2).unsqueeze(1)  # (B, 1, N, F)
        x = torch.cat([mag_in, pha.transpose(1, 2).unsqueeze(1)], dim=1)
        x = self.dense_encoder(x, mask).permute(0, 2, 3, 1)  # (B, N, F', C)
        for block in self.TSConformer:
            x = block(x, frame_mask)
        x = x.permute(0, 3, 1, 2)  # (B, C, N, F')
        denoised_mag = (mag_in * self.mask_decoder(x, mask)).squeeze(1).transpose(1, 2)
        denoised_pha = self.phase_decoder(x, mask).squeeze(1).transpose(1, 2)
        return denoised_mag, denoised_pha


def output_length(num_samples: int, hop_size: int) -> int:
    """Length `denoise` returns for an input of `num_samples` (centred STFT: hop * (num_samples // hop))."""
    return hop_size * (num_samples // hop_size)


def _as_batch(noisy: Tensor, lengths: Tensor | Sequence[int] | None, min_length: int) -> tuple[Tensor, list[int]]:
    if noisy.dim() == 1:
        noisy = noisy.unsqueeze(0)
    if noisy.dim() != 2:
        raise ValueError(f"denoise expects audio (T,) or (B, T), got shape {tuple(noisy.shape)}")
    sizes = [noisy.shape[1]] * noisy.shape[0] if lengths is None else [int(n) for n in lengths]
    if len(sizes) != noisy.shape[0] or min(sizes) < 1 or max(sizes) > noisy.shape[1]:
        raise ValueError(f"lengths {sizes} do not fit audio of shape {tuple(noisy.shape)}")
    if min(sizes) < min_length:
        raise ValueError(f"every item needs at least {min_length} samples (reflect-padded STFT), got lengths {sizes}")
    return noisy, sizes


def _rms_gain(wav: Tensor) -> Tensor:
    """sqrt(T / sum(x^2)) as the official code; 1 for an all-zero input (officially a NaN)."""
    energy = torch.sum(wav**2.0)
    if energy == 0:
        return torch.ones((), dtype=wav.dtype, device=wav.device)
    return torch.sqrt(wav.shape[-1] / energy)


def _crossfade_weights(starts: list[int], size: int, device: torch.device) -> list[Tensor]:
    """Per-window weights (size,): linear ramps across each overlap, positive everywhere."""
    weights = []
    for i, start in enumerate(starts):
        w = torch.ones(size, device=device)
        if i > 0:
            rise = starts[i - 1] + size - start
            w[:rise] = torch.minimum(w[:rise], (torch.arange(rise, device=device) + 0.5) / rise)
        if i + 1 < len(starts):
            fall = start + size - starts[i + 1]
            w[size - fall :] = torch.minimum(w[size - fall :], (fall - torch.arange(fall, device=device) - 0.5) / fall)
        weights.append(w)
    return weights


def _denoise_chunked(
    model: Denoiser, mag: Tensor, pha: Tensor, chunk: int, overlap: int, chunk_batch_size: int
) -> Tensor:
    """(1, F, N) compressed spectrogram -> (1, F, N) complex denoised spectrum, window by window."""
    cfg = model.config
    n_frames = mag.shape[-1]
    step = chunk - overlap
    starts = [*range(0, n_frames - chunk, step), n_frames - chunk]
    weights = _crossfade_weights(starts, chunk, mag.device)
    spec = torch.zeros(mag.shape, dtype=torch.complex64 if mag.dtype != torch.float64 else torch.complex128, device=mag.device)
    total = torch.zeros(n_frames, dtype=mag.dtype, device=mag.device)
    for first in range(0, len(starts), chunk_batch_size):
        group = starts[first : first + chunk_batch_size]
        mag_g, pha_g = model(
            torch.cat([mag[..., s : s + chunk] for s in group]), torch.cat([pha[..., s : s + chunk] for s in group])
        )
        pieces = compressed_to_complex(mag_g, pha_g, cfg.compress_factor)
        for j, s in enumerate(group):
            w = weights[first + j]
            spec[0, :, s : s + chunk] += pieces[j] * w
            total[s : s + chunk] += w
    return spec / total


@torch.inference_mode()
def denoise(
    noisy: Tensor,
    model: Denoiser,
    lengths: Tensor | Sequence[int] | None = None,
    *,
    chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    chunk_batch_size: int = 1,
) -> Tensor:
    """Denoise audio at `model.config.sampling_rate`: (T,) or (B, T) -> (B, hop * (T // hop)).

    Per item, as the official `denoiser.infer.denoise`: scale to unit RMS, centred STFT (Hann window,
    reflect padding), magnitude ** compress_factor, the model, inverse, undo the scale. An item of length
    L (`lengths`, default: the full width) yields `output_length(L, hop)` samples; the rest of its row is 0.

    Items up to `chunk_seconds` run in one piece (exactly the official computation; batched items give
    their single results). Longer items run in windows of `chunk_seconds` overlapping by `overlap_seconds`
    on one global STFT, cross-faded in the complex spectrum. MP-SENet attends over all frames and
    normalises over the whole input, so chunking approximates the one-piece result (memory stays
    bounded); `chunk_seconds=None` disables it.
    """
    cfg = model.config
    noisy, sizes = _as_batch(noisy, lengths, cfg.n_fft // 2 + 1)
    window = model.window.to(noisy.dtype)
    hop = cfg.hop_size
    chunk = None if chunk_seconds is None else max(1, round(chunk_seconds * cfg.sampling_rate / hop))
    overlap = round(overlap_seconds * cfg.sampling_rate / hop)
    if chunk is not None and not 0 <= overlap < chunk:
        raise ValueError(f"overlap_seconds={overlap_seconds} must be >= 0 and below chunk_seconds={chunk_seconds}")

    gains, specs = [], []
    for i, size in enumerate(sizes):
        wav = noisy[i, :size]
        gain = _rms_gain(wav)
        mag, pha = mag_phase_stft((wav * gain).unsqueeze(0), cfg.n_fft, hop, window, cfg.compress_factor)
        gains.append(gain)
        specs.append((mag, pha))

    out = noisy.new_zeros(noisy.shape[0], output_length(max(sizes), hop))
    whole = [i for i, (mag, _) in enumerate(specs) if chunk is None or mag.shape[-1] <= chunk]
    if whole:
        n_max = max(specs[i][0].shape[-1] for i in whole)
        pad = [n_max - specs[i][0].shape[-1] for i in whole]
        mag = torch.cat([nn.functional.pad(specs[i][0], (0, p)) for i, p in zip(whole, pad, strict=True)])
        pha = torch.cat([nn.functional.pad(specs[i][1], (0, p)) for i, p in zip(whole, pad, strict=True)])
        frame_lengths = torch.tensor([specs[i][0].shape[-1] for i in whole], device=mag.device)
        mag_g, pha_g = model(mag, pha, frame_lengths)
        spec = compressed_to_complex(mag_g, pha_g, cfg.compress_factor)
        for j, i in enumerate(whole):
            n = int(frame_lengths[j])
            out[i, : hop * (n - 1)] = complex_istft(spec[j : j + 1, :, :n], cfg.n_fft, hop, window)[0] / gains[i]
    for i, (mag, pha) in enumerate(specs):
        if i in whole:
            continue
        spec = _denoise_chunked(model, mag, pha, chunk, overlap, chunk_batch_size)
        n = mag.shape[-1]
        out[i, : hop * (n - 1)] = complex_istft(spec, cfg.n_fft, hop, window)[0] / gains[i]
    return out
