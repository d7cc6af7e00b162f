"""MP-SENet speech denoiser as HierSpeech++ uses it on prompts, and the `denoise` front-to-back call.

`Denoiser` holds the official MPNet parameters (state dict of `denoiser/g_best`, 353 entries) and maps a
compressed magnitude / phase spectrogram to its denoised version. `denoise` does the whole job on audio:
RMS normalisation, STFT, the model, inverse STFT, de-normalisation. Compared with the official code it
batches items of different lengths exactly (each item gets what it would get alone), and it streams long
inputs through overlapping windows so memory stays flat in length (an approximation, see `denoise`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from hierspeech.config import ConfigReader, ModelConfig, field_names
from hierspeech.modules.conformer import TSConformerBlock
from hierspeech.modules.mag_phase_stft import (
    complex_istft,
    compressed_to_complex,
    mag_phase_stft,
    num_stft_frames,
    overlap_add_frames,
    reflect_padded_segment,
    window_envelope,
)
from hierspeech.modules.mpsenet_blocks import DenseEncoder, MaskDecoder, PhaseDecoder
from hierspeech.modules.scratch import reuse_scratch
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


def _chunk_starts(n_frames: int, chunk: int, overlap: int) -> list[int]:
    """First frame of every window: a regular step of chunk - overlap, the last window flush with the end."""
    return [*range(0, n_frames - chunk, chunk - overlap), n_frames - chunk]


def _denoise_streamed(model: Denoiser, wav: Tensor, chunk: int, overlap: int, chunk_batch_size: int) -> Tensor:
    """(T,) unit-RMS audio -> (hop * (N - 1),) denoised audio, N = STFT frames, window by window.

    The same result as cross-fading the windows' complex spectra on one global STFT and inverting that
    (the formulation before streaming), computed without any full-length spectrogram:

    * each window's STFT frames are computed from the samples they read (the reflect padding of the
      whole signal only matters at its two ends), so they equal the global STFT's frames;
    * the cross-fade weight of every frame is known up front (the windows are placed before any is
      run), so each window's spectrum is weighted by its share w / sum(w) of every frame;
    * the inverse STFT is linear per frame: the shared frames' weighted pieces, inverted and
      overlap-added in the waveform domain, sum to the inverse of the cross-faded spectrum; samples
      that no later window reaches are divided by the window envelope (as `torch.istft` does) and final.

    Memory: the input and output audio plus one group of `chunk_batch_size` windows, whatever the length.
    """
    cfg = model.config
    n_fft, hop = cfg.n_fft, cfg.hop_size
    window = model.window.to(wav.dtype)
    pad = n_fft // 2
    n_frames = num_stft_frames(wav.shape[-1], n_fft, hop)
    starts = _chunk_starts(n_frames, chunk, overlap)
    weights = _crossfade_weights(starts, chunk, wav.device)
    total = torch.zeros(n_frames, dtype=wav.dtype, device=wav.device)
    for start, w in zip(starts, weights, strict=True):
        total[start : start + chunk] += w
    segment = n_fft + hop * (chunk - 1)  # padded samples read by one window
    out = wav.new_zeros(hop * (n_frames - 1))  # output sample i = padded sample i + pad
    done = 0  # out[:done] is final
    for first in range(0, len(starts), chunk_batch_size):
        group = starts[first : first + chunk_batch_size]
        audio = torch.stack([reflect_padded_segment(wav, s * hop, segment, pad) for s in group])
        mag, pha = mag_phase_stft(audio, n_fft, hop, window, cfg.compress_factor, center=False)
        mag_g, pha_g = model(mag, pha)
        shares = torch.stack([weights[first + j] / total[s : s + chunk] for j, s in enumerate(group)])
        pieces = compressed_to_complex(mag_g, pha_g, cfg.compress_factor) * shares[:, None, :]
        for s, piece in zip(group, overlap_add_frames(pieces, n_fft, hop, window), strict=True):
            lo, hi = s * hop - pad, s * hop - pad + segment  # this window's reach in output samples
            out[max(lo, 0) : min(hi, out.shape[0])] += piece[max(-lo, 0) : segment - max(hi - out.shape[0], 0)]
        following = starts[first + len(group)] if first + len(group) < len(starts) else n_frames + n_fft
        ready = min(out.shape[0], following * hop - pad)  # no later window writes before this sample
        if ready > done:
            out[done:ready] /= window_envelope(done + pad, ready + pad, n_frames, n_fft, hop, window)
            done = ready
    return out


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
    their single results). Longer items are streamed in windows of `chunk_seconds` overlapping by
    `overlap_seconds` (`chunk_batch_size` windows per model call), cross-faded frame by frame and
    overlap-added in the waveform domain (`_denoise_streamed`): memory is flat in length (one group of
    windows besides the input and output audio). MP-SENet attends over all frames and normalises over
    the whole input, so chunking approximates the one-piece result; `chunk_seconds=None` disables it.
    """
    cfg = model.config
    noisy, sizes = _as_batch(noisy, lengths, cfg.n_fft // 2 + 1)
    window = model.window.to(noisy.dtype)
    hop = cfg.hop_size
    chunk = None if chunk_seconds is None else max(1, round(chunk_seconds * cfg.sampling_rate / hop))
    overlap = round(overlap_seconds * cfg.sampling_rate / hop)
    if chunk is not None and not 0 <= overlap < chunk:
        raise ValueError(f"overlap_seconds={overlap_seconds} must be >= 0 and below chunk_seconds={chunk_seconds}")

    with reuse_scratch():  # the windows' large buffers are reused, not faulted in anew (see scratch.py)
        gains = [_rms_gain(noisy[i, :size]) for i, size in enumerate(sizes)]
        n_frames = [num_stft_frames(size, cfg.n_fft, hop) for size in sizes]
        out = noisy.new_zeros(noisy.shape[0], output_length(max(sizes), hop))
        whole = [i for i, n in enumerate(n_frames) if chunk is None or n <= chunk]
        if whole:
            specs = {
                i: mag_phase_stft((noisy[i, : sizes[i]] * gains[i]).unsqueeze(0), cfg.n_fft, hop, window, cfg.compress_factor)
                for i in whole
            }
            n_max = max(n_frames[i] for i in whole)
            mag = torch.cat([nn.functional.pad(specs[i][0], (0, n_max - n_frames[i])) for i in whole])
            pha = torch.cat([nn.functional.pad(specs[i][1], (0, n_max - n_frames[i])) for i in whole])
            frame_lengths = torch.tensor([n_frames[i] for i in whole], device=mag.device)
            mag_g, pha_g = model(mag, pha, frame_lengths)
            spec = compressed_to_complex(mag_g, pha_g, cfg.compress_factor)
            for j, i in enumerate(whole):
                n = n_frames[i]
                out[i, : hop * (n - 1)] = complex_istft(spec[j : j + 1, :, :n], cfg.n_fft, hop, window)[0] / gains[i]
        for i, size in enumerate(sizes):
            if i not in whole:
                wav = noisy[i, :size] * gains[i]
                out[i, : hop * (n_frames[i] - 1)] = _denoise_streamed(model, wav, chunk, overlap, chunk_batch_size) / gains[i]
    return out
