"""wav2vec 2.0 (MMS-300m / XLS-R-300m) content features: the hidden state entering layer 7.

The synthesizer consumes ``hidden_states[7]`` of transformers' ``Wav2Vec2Model`` run on the
raw waveform (no feature-extractor normalisation): the input of the 8th transformer layer, i.e.
the output of layer index 6. For the stable-layer-norm variant (MMS, XLS-R) the encoder's final
``layer_norm`` applies only to the LAST hidden state, so a model cut to 7 layers must skip it to
reproduce ``hidden_states[7]`` exactly; the post-norm variant applies its norm before the layers
and keeps it. :class:`Wav2Vec2Features` keeps layers 0..6 only (~7/24 of the encoder cost).
On the CPU in float32 it computes them through :mod:`hierspeech.w2v_packed` (items packed
frame-wise, no padding) unless told to use transformers' forward (``backend=``).

Audio preparation: the end padding of every feature (`hierspeech.framing.padded_length`: zero-pad
to the next multiple of 1280 samples, a full 1280 more when already a multiple), then reflect-pad
40 samples on both sides. T samples give
``padded_length // 320`` frames at 50 Hz, the same count as the F0 track // 4.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import Wav2Vec2Config, Wav2Vec2Model

from hierspeech.defaults import DEFAULT_MODEL, FEATURE_LAYER
from hierspeech.defaults import SAMPLE_RATE as SAMPLE_RATE  # re-exported: the rate of every model input
from hierspeech.framing import padded_length
from hierspeech.w2v_packed import PackedWav2Vec2, onednn_linear_available, packed_support

REFLECT_PAD = 40
HOP = 320
DEFAULT_MAX_BATCH_SAMPLES = 16000 * 120
"""Padded samples per batch (2 minutes of audio): bounds activation memory."""
DEFAULT_MAX_PADDING = 0.25
"""Largest fraction of a batch's longest item that a shorter item may be padded with."""
DEFAULT_CONV_CHUNK_FRAMES = 1500
"""Output frames of all items of a batch that transformers' conv encoder computes at a time (30 s of
audio): bounds its working memory (the first layer alone writes ~0.39 GB per minute of audio at the
MMS width, ~24 GB for a one-hour item in one pass) whatever the items' lengths."""
PRECISIONS = ("fp32", "bf16")
"""How :meth:`Wav2Vec2Features.extract` computes: float32 (default; the packed CPU path or
transformers'), or transformers' forward under bfloat16 autocast (faster on GPUs; its error against
float32 is measured in the tests and docs/frontends.md)."""
BACKENDS = ("auto", "packed", "transformers")
"""How :meth:`Wav2Vec2Features.extract` computes: ``packed`` is the CPU float32 path of
:mod:`hierspeech.w2v_packed`; ``transformers`` is transformers' forward with padded batches
and attention masks (any device and dtype); ``auto`` takes ``packed`` where it applies."""


def num_frames(n_samples: int) -> int:
    """w2v frames for `n_samples` of 16 kHz audio (50 Hz)."""
    return padded_length(n_samples) // HOP


def prepare_audio(wav_16k: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(T,) audio -> (padded_length(T) + 80,) float32 model input."""
    wav = torch.as_tensor(wav_16k)
    if wav.dim() == 2 and wav.shape[0] == 1:
        wav = wav[0]
    if wav.dim() != 1 or wav.shape[0] == 0:
        raise ValueError(f"expected non-empty mono audio of shape (T,) or (1, T), got {tuple(wav.shape)}")
    wav = wav.to(torch.float32)
    wav = F.pad(wav, (0, padded_length(wav.shape[0]) - wav.shape[0]))
    return F.pad(wav[None, None], (REFLECT_PAD, REFLECT_PAD), mode="reflect")[0, 0]


def length_buckets(
    lengths: Sequence[int],
    max_batch_size: int,
    max_batch_samples: int,
    max_padding: float = DEFAULT_MAX_PADDING,
) -> list[list[int]]:
    """Indices grouped longest first into batches of similar length.

    A batch holds at most `max_batch_size` items, at most `max_batch_samples` padded samples
    (longest x count), and no item shorter than ``(1 - max_padding)`` x its longest one, so
    padding wastes at most that fraction of any item's compute. An item longer than the sample
    budget gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches:
            batch = batches[-1]
            longest = lengths[batch[0]]
            if (
                len(batch) < max_batch_size
                and longest * (len(batch) + 1) <= max_batch_samples
                and lengths[i] >= (1.0 - max_padding) * longest
            ):
                batch.append(i)
                continue
        batches.append([i])
    return batches


def _frozen_conv(conv: nn.Conv1d) -> nn.Conv1d:
    """A plain Conv1d holding the current (weight-normed) weight of `conv`: computed once instead
    of at every call, same values. A new module, so a model sharing `conv`'s class is untouched."""
    plain = nn.Conv1d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        plain.weight.copy_(conv.weight)
        if conv.bias is not None:
            plain.bias.copy_(conv.bias)
    return plain


class Wav2Vec2Features(nn.Module):
    """A wav2vec 2.0 model cut after the layers that ``hidden_states[layer]`` needs."""

    def __init__(
        self, model: Wav2Vec2Model, layer: int = FEATURE_LAYER, *, conv_chunk_frames: int | None = DEFAULT_CONV_CHUNK_FRAMES
    ) -> None:
        super().__init__()
        config = model.config
        if not 0 <= layer <= config.num_hidden_layers:
            raise ValueError(f"layer {layer} out of range for a {config.num_hidden_layers}-layer encoder")
        if len(model.encoder.layers) < layer:
            raise ValueError(f"the model has {len(model.encoder.layers)} layers, hidden_states[{layer}] needs {layer}")
        model.encoder.layers = model.encoder.layers[:layer]
        if config.do_stable_layer_norm:
            # hidden_states[layer] is taken before the final norm, which only the last state gets.
            model.encoder.layer_norm = nn.Identity()
        model.adapter = None  # hidden_states never pass the adapter
        model.encoder.pos_conv_embed.conv = _frozen_conv(model.encoder.pos_conv_embed.conv)
        self.model = model.eval()
        self.layer = layer
        self.conv_chunk_frames = conv_chunk_frames
        self.requires_grad_(False)
        self._packed: PackedWav2Vec2 | None = None

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        layer: int = FEATURE_LAYER,
        local_files_only: bool | None = None,
        attn_implementation: str = "sdpa",
    ) -> Wav2Vec2Features:
        """Load a Hub model id or local directory, building only the layers needed.

        `local_files_only` defaults to the ``HF_HUB_OFFLINE`` environment variable. Checkpoints
        saved from ``Wav2Vec2ForPreTraining`` (as MMS-300m is) load too; their extra heads and the
        unused upper layers are ignored, but any missing weight of the kept part is an error.
        """
        if local_files_only is None:
            local_files_only = os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}
        config = Wav2Vec2Config.from_pretrained(name_or_path, local_files_only=local_files_only)
        if not 0 <= layer <= config.num_hidden_layers:
            raise ValueError(f"layer {layer} out of range for {name_or_path} ({config.num_hidden_layers} layers)")
        config.num_hidden_layers = layer
        model, info = Wav2Vec2Model.from_pretrained(
            name_or_path,
            config=config,
            local_files_only=local_files_only,
            attn_implementation=attn_implementation,
            output_loading_info=True,
        )
        missing = [k for k in info["missing_keys"] if k != "masked_spec_embed"]
        if missing or info["mismatched_keys"]:
            raise RuntimeError(
                f"{name_or_path}: weights missing from the checkpoint: {missing}; "
                f"shape mismatches: {info['mismatched_keys']}"
            )
        return cls(model, layer)

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def device(self) -> torch.device:
        """The device the model's weights are on."""
        return next(self.parameters()).device

    @property
    def pads_exactly(self) -> bool:
        """Whether a zero-padded, masked batch gives every item its solo features.

        False for a group-normed conv encoder (wav2vec2-base): its GroupNorm normalises each channel
        over the whole padded time axis, so padding changes the valid frames. `extract` then batches
        only items of equal (prepared) length.
        """
        return self.model.config.feat_extract_norm == "layer"

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S) prepared audio (+ (B, S) 1/0 mask) -> (B, frames, C) ``hidden_states[layer]``.

        transformers' forward, with the conv encoder run in bounded chunks (`conv_features`).
        """
        model = self.model
        features = self.conv_features(input_values)
        if attention_mask is not None:
            attention_mask = model._get_feature_vector_attention_mask(
                features.shape[1], attention_mask, add_adapter=False
            )
        hidden, _ = model.feature_projection(features)
        return model.encoder(hidden, attention_mask=attention_mask)[0]

    def conv_features(self, input_values: torch.Tensor) -> torch.Tensor:
        """(B, S) prepared audio -> (B, frames, conv channels): transformers' conv encoder.

        A layer-normed encoder (MMS, XLS-R) runs ``conv_chunk_frames`` output frames of the batch at
        a time, each chunk from the samples its frames see: the convolutions are valid (no padding),
        every chunk starts on a multiple of the total stride and the norms are per frame, so the
        result equals one pass (to the rounding of the kernels on other lengths), while memory no
        longer grows with the item's length. A group-normed encoder normalises over the whole signal
        and runs in one pass.
        """
        encoder = self.model.feature_extractor
        batch, samples = input_values.shape
        stride, field = _conv_geometry(encoder)
        frames = (samples - field) // stride + 1 if samples >= field else 0
        chunk = None if self.conv_chunk_frames is None else max(1, self.conv_chunk_frames // batch)
        if chunk is None or frames <= chunk or not self.pads_exactly:
            return encoder(input_values).transpose(1, 2)
        pieces = []
        for first in range(0, frames, chunk):
            last = min(frames, first + chunk)
            pieces.append(encoder(input_values[:, stride * first : stride * (last - 1) + field]))
        return torch.cat(pieces, dim=2).transpose(1, 2)

    def backend_for(self, backend: str = "auto", precision: str = "fp32") -> str:
        """The backend `extract` uses: ``packed`` or ``transformers`` (see :data:`BACKENDS`)."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown w2v backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown w2v precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if backend == "transformers":
            return backend
        parameter = next(self.parameters())
        reason = packed_support(self.model)
        if reason is None and precision != "fp32":
            reason = f"precision {precision} (the packed path is float32)"
        if reason is None and parameter.device.type != "cpu":
            reason = f"the model is on {parameter.device.type} (the packed path is for CPU)"
        if reason is None and parameter.dtype != torch.float32:
            reason = f"the model is {parameter.dtype} (the packed path is float32)"
        if reason is None:
            return "packed"
        if backend == "packed":
            raise ValueError(f"w2v backend 'packed' does not apply: {reason}; use 'transformers'")
        return "transformers"

    def backend_provenance(self, backend: str = "auto", precision: str = "fp32") -> dict[str, str]:
        """What to record of how features were computed: the backend `extract` uses and, for
        the packed one, which linear kernels it runs on; the precision when it is not float32."""
        chosen = self.backend_for(backend, precision)
        record = {"backend": chosen}
        if chosen == "packed":
            record["linear"] = "oneDNN" if onednn_linear_available() else "torch"
        if precision != "fp32":
            record["precision"] = precision
        return record

    @torch.inference_mode()
    def extract(
        self,
        wavs: Sequence[np.ndarray | torch.Tensor],
        *,
        max_batch_size: int = 8,
        max_batch_samples: int = DEFAULT_MAX_BATCH_SAMPLES,
        max_padding: float = DEFAULT_MAX_PADDING,
        dtype: torch.dtype = torch.float16,
        backend: str = "auto",
        device: torch.device | str = "cpu",
        precision: str = "fp32",
    ) -> list[torch.Tensor]:
        """Features of each 16 kHz mono waveform, batched by length.

        transformers backend: items are sorted by length and batched with an attention mask; a
        batch of equal lengths runs without one, exactly as a single item does. Valid frames
        never see the padding (the conv encoder's receptive field of the last valid frame ends
        at the item's end, and padded frames are zeroed before the positional conv and masked
        in attention), except in a group-normed conv encoder: for those (`pads_exactly` False)
        only items of equal length share a batch. packed backend: a batch's items are
        concatenated frame-wise, with no padding at all (`max_padding` does not apply);
        `max_batch_samples` bounds the batch.

        `device`: where the returned features live (``features.device`` keeps them on the model's
        device, e.g. for a synthesizer on the same GPU). `precision` ``"bf16"`` runs transformers'
        forward under bfloat16 autocast (see :data:`PRECISIONS`).

        Returns:
            one (C, num_frames(T_i)) tensor of `dtype` on `device` per input, in input order.
        """
        packed = self.backend_for(backend, precision) == "packed"
        if packed and self._packed is None:
            self._packed = PackedWav2Vec2(self.model)
        model_device = self.device
        prepared = [prepare_audio(w) for w in wavs]
        lengths = [p.shape[0] for p in prepared]
        padding = 1.0 if packed else (max_padding if self.pads_exactly else 0.0)
        autocast = torch.autocast(model_device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
        results: dict[int, torch.Tensor] = {}
        for batch in length_buckets(lengths, max_batch_size, max_batch_samples, padding):
            if packed:
                hidden = self._packed([prepared[i] for i in batch])
            else:
                with autocast:
                    hidden = self._padded_batch([prepared[i] for i in batch], model_device)
            for row, i in enumerate(batch):
                frames = (lengths[i] - 2 * REFLECT_PAD) // HOP
                results[i] = hidden[row][:frames].transpose(0, 1).to(device=device, dtype=dtype)
        return [results[i] for i in range(len(prepared))]

    def _padded_batch(self, prepared: list[torch.Tensor], device: torch.device) -> torch.Tensor:
        """transformers' forward on zero-padded items (longest first), masked when lengths differ."""
        longest = prepared[0].shape[0]
        values = torch.zeros(len(prepared), longest)
        mask = torch.zeros(len(prepared), longest, dtype=torch.long)
        for row, wav in enumerate(prepared):
            values[row, : wav.shape[0]] = wav
            mask[row, : wav.shape[0]] = 1
        needs_mask = any(wav.shape[0] != longest for wav in prepared)
        return self(values.to(device), mask.to(device) if needs_mask else None)


def _conv_geometry(encoder: nn.Module) -> tuple[int, int]:
    """(total stride, receptive field) in samples of one output frame of a wav2vec 2.0 conv encoder."""
    stride, field = 1, 1
    for layer in encoder.conv_layers:
        conv = layer.conv
        field += (conv.kernel_size[0] - 1) * stride
        stride *= conv.stride[0]
    return stride, field


def extract_w2v(
    model: Wav2Vec2Features,
    wavs: Sequence[np.ndarray | torch.Tensor],
    *,
    max_batch_size: int = 8,
    max_batch_samples: int = DEFAULT_MAX_BATCH_SAMPLES,
    max_padding: float = DEFAULT_MAX_PADDING,
    dtype: torch.dtype = torch.float16,
    backend: str = "auto",
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> list[torch.Tensor]:
    """Functional form of :meth:`Wav2Vec2Features.extract`: one (C, frames) tensor per waveform."""
    return model.extract(
        wavs,
        max_batch_size=max_batch_size,
        max_batch_samples=max_batch_samples,
        max_padding=max_padding,
        dtype=dtype,
        backend=backend,
        device=device,
        precision=precision,
    )
