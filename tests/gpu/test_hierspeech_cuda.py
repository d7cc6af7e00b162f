"""The hierspeech library on CUDA: what the CPU tests cannot show (issue 21's model-side items).

CPU generators driving a model on the device, the bucketed vocoder (the CUDA default), a long w2v
item's conv encoder in bounded memory, SpeechSR outputs offloaded as they are done, and w2v
features kept on the device, in bf16 too. Memory bounds are checked on CUDA only; the rehearsal
(`HSP_GPU_TEST_DEVICE=cpu`) runs the same code on shorter inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hierspeech.testing.tiny import tiny_synthesizer
from hierspeech.testing.tiny_ttv import tiny_ttv
from hierspeech.testing.w2v import tiny_wav2vec2_config
from pipeline.testing.tolerances import BATCH_VS_ALONE, CUDA_VS_CPU, Tolerance

pytestmark = pytest.mark.gpu

GIB = 1024**3


def _peak_bytes(device: str, run) -> tuple[object, int]:
    """run() and the most device memory it allocated beyond what was held before (0 off CUDA)."""
    if device != "cuda":
        return run(), 0
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    result = run()
    torch.cuda.synchronize()
    return result, torch.cuda.max_memory_allocated() - before


def _vc_inputs(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    src = torch.randn(len(lengths), 1024, max(lengths), generator=gen)
    f0 = torch.rand(len(lengths), 1, 4 * max(lengths), generator=gen) * 5
    trg_mel = torch.randn(len(lengths), 80, 30, generator=gen)
    return src, torch.tensor(lengths), trg_mel, torch.tensor([30, 24, 17][: len(lengths)]), f0


def test_cpu_generator_draws_for_a_synthesizer_on_device(device, record) -> None:
    model = tiny_synthesizer()
    inputs = _vc_inputs([23, 17, 9])
    cpu = model.voice_conversion(*inputs, noise_scale=0.7, generator=torch.Generator().manual_seed(5))
    on_device = model.to(device).voice_conversion(
        *(x.to(device) for x in inputs), noise_scale=0.7, generator=torch.Generator().manual_seed(5)
    )
    assert on_device.device.type == device
    tolerance = CUDA_VS_CPU["vc"]
    worst = float((on_device.cpu() - cpu).abs().max())
    record(f"tiny VC, CPU generator, on {device} vs cpu", 3, worst, tolerance)
    assert worst <= tolerance.max_abs, worst


def test_cpu_generators_draw_for_a_ttv_on_device(device, record) -> None:
    model = tiny_ttv()
    tokens = torch.randint(1, model.config.n_vocab, (2, 11), generator=torch.Generator().manual_seed(1))
    lengths, g = torch.tensor([11, 7]), torch.randn(2, model.config.gin_channels, 1)

    def run(m, dev: str, per_item: bool):
        gens = [torch.Generator().manual_seed(s) for s in (3, 4)] if per_item else torch.Generator().manual_seed(3)
        return m.infer(tokens.to(dev), lengths.to(dev), g.to(dev), 0.5, 0.8, generator=gens)

    tolerance = CUDA_VS_CPU["tts"]
    for per_item in (False, True):
        cpu = run(model, "cpu", per_item)
        got = run(model.to(device), device, per_item)
        model.to("cpu")
        assert got.w2v.device.type == device
        assert torch.equal(got.lengths.cpu(), cpu.lengths)
        worst = float((got.w2v.cpu() - cpu.w2v).abs().max())
        record(f"tiny TTV w2v, CPU generator{'s' if per_item else ''}, on {device} vs cpu", 2, worst, tolerance)
        assert worst <= tolerance.max_abs, worst


def test_bucketed_vocoder_is_the_cuda_default_and_equals_single_items(device, record) -> None:
    """Ragged lengths below and above the tiny model's 158-frame tail: buckets, tails, equal lengths."""
    model = tiny_synthesizer().to(device)
    lengths = [400, 350, 390, 160, 100, 100, 37]
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(len(lengths), model.config.inter_channels, max(lengths), generator=gen).to(device)
    g = torch.randn(len(lengths), model.config.gin_channels, 1, generator=gen).to(device)
    calls: list[int] = []
    hook = model.sn.register_forward_hook(lambda _m, args, _o: calls.append(args[0].shape[0]))
    with torch.no_grad():
        audio = model.vocode(z, g, torch.tensor(lengths), bucketed=None if device == "cuda" else True)
    hook.remove()
    assert len(calls) == 5  # three buckets, one equal-length pair, one batch of two tails
    hop = model.config.samples_per_frame
    worst = 0.0
    with torch.no_grad():
        for i, n in enumerate(lengths):
            alone = model.vocode(z[i : i + 1, :, :n], g[i : i + 1])
            worst = max(worst, float((audio[i : i + 1, :, : n * hop] - alone).abs().max()))
    tolerance = BATCH_VS_ALONE["vc"]
    record(f"tiny vocoder bucketed vs alone on {device}", len(lengths), worst, tolerance)
    assert worst <= tolerance.max_abs, worst


def _mms_conv_w2v(device: str):
    """MMS-300m's conv encoder widths (512 channels: the first conv writes 0.39 GB per minute of audio)
    under a tiny transformer, random weights."""
    from transformers import Wav2Vec2Model

    from hierspeech.w2v import Wav2Vec2Features

    config = tiny_wav2vec2_config()
    config.conv_dim = (512,) * 7
    torch.manual_seed(0)
    return Wav2Vec2Features(Wav2Vec2Model(config).eval()).to(device)


def test_long_w2v_item_runs_its_conv_encoder_in_bounded_memory(device, record) -> None:
    features = _mms_conv_w2v(device)
    minutes = 10 if device == "cuda" else 0.25
    wave = np.random.default_rng(0).standard_normal(int(minutes * 60 * 16000)).astype(np.float32) * 0.1
    one_pass_first_conv = 512 * (wave.size // 5) * 4
    got, peak = _peak_bytes(device, lambda: features.extract([wave], dtype=torch.float32, device=device)[0])
    if device == "cuda":  # 10 minutes: 3.9 GB for the first conv's output alone in one pass
        assert peak <= 1 * GIB < one_pass_first_conv, (peak, one_pass_first_conv)
    short = torch.from_numpy(wave[: 60 * 16000 if device == "cuda" else wave.size])
    chunked = features.extract([short], dtype=torch.float32)[0]
    features.conv_chunk_frames = None
    whole = features.extract([short], dtype=torch.float32)[0]
    tolerance = BATCH_VS_ALONE["w2v"]
    worst = float((chunked - whole).abs().max())
    record(f"w2v conv encoder chunked vs one pass on {device}", 1, worst, tolerance)
    assert worst <= tolerance.max_abs, worst
    assert torch.isfinite(got).all() and got.device.type == device


def test_w2v_features_stay_on_device_and_bf16_error_is_bounded(device, record) -> None:
    from transformers import Wav2Vec2Model

    from hierspeech.w2v import Wav2Vec2Features

    torch.manual_seed(0)
    features = Wav2Vec2Features(Wav2Vec2Model(tiny_wav2vec2_config()).eval()).to(device)
    wavs = [np.random.default_rng(s).standard_normal(n).astype(np.float32) * 0.1 for s, n in ((1, 23456), (2, 12000))]
    fp32 = features.extract(wavs, dtype=torch.float32, device=features.device)
    bf16 = features.extract(wavs, dtype=torch.float32, device=features.device, precision="bf16")
    assert {f.device.type for f in fp32 + bf16} == {device}
    tolerance = Tolerance("w2v bf16 autocast vs float32 (tiny config)", 0.15, "abs", "bfloat16 matmuls and convs")
    worst = max(float((a - b).abs().max()) for a, b in zip(fp32, bf16, strict=True))
    record(f"w2v bf16 vs fp32 on {device}", 2, worst, tolerance)
    assert 0 < worst <= tolerance.max_abs, worst


def test_upsample_batch_offloads_so_device_memory_does_not_grow_with_length(device, reference_dir: Path) -> None:
    from hierspeech import SpeechSR
    from hierspeech.speechsr_batching import upsample_batch

    model = SpeechSR.from_pretrained(reference_dir / "weights/speechsr48k/G_100000.pth").to(device)
    seconds = (60, 240) if device == "cuda" else (3, 6)
    rng = np.random.default_rng(0)
    peaks, outputs = [], []
    for s in seconds:  # the waves already on the device, as a pipeline stage holds them
        waves = [torch.from_numpy(rng.standard_normal(s * 16000).astype(np.float32) * 0.1).to(device) for _ in range(2)]
        out, peak = _peak_bytes(device, lambda waves=waves: upsample_batch(model, waves, offload=None))
        assert all(o.device.type == "cpu" for o in out)
        peaks.append(peak)
        outputs.append((waves, out))
    if device == "cuda":  # 2 x 3 more minutes at 48 kHz would add 69 MB if kept on the device
        assert peaks[1] <= peaks[0] + 8 * 1024**2, peaks
    waves, offloaded = outputs[0]
    kept = upsample_batch(model, waves, offload=False)
    for a, b in zip(kept, offloaded, strict=True):
        assert torch.equal(a.cpu(), b.cpu())
