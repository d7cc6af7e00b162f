"""The shortest input of every extract feature, of SpeechSR and of a voice prompt is real, and checked up front."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.engine.item import Item
from pipeline.extract import ExtractConfig, extract_job
from pipeline.io.audio import AudioError
from pipeline.stages.decode import DecodeStage
from pipeline.stages.f0_mel import F0MelStage
from pipeline.stages.min_length import EXTRACT_FEATURES, MEL, PROMPT, YAAPT_UNPADDED_MIN_SAMPLES, for_extract
from pipeline.stages.model_features import ModelFeaturesStage
from tests.pipeline.conftest import tone


def _speech_like(samples: int) -> np.ndarray:
    rng = np.random.default_rng(samples)
    t = np.arange(samples) / 16000
    return (0.3 * np.sin(2 * np.pi * 150 * t) + 0.01 * rng.standard_normal(samples)).astype(np.float32)


def _mel_item(samples: int) -> Item:
    stage = F0MelStage(f0=False, mel=True)
    stage.setup()
    item = Item(id="x", row=0, fields={}, data={"audio": _speech_like(samples)})
    stage.process_item(item)
    return item


def test_mel_minimum_is_real():
    assert MEL.samples == 641 and for_extract(("w2v", "mel")) is MEL and for_extract(("w2v", "f0", "tokens")).samples == 1
    assert _mel_item(MEL.samples).index["mel_frames"] == MEL.samples // 320
    with pytest.raises(RuntimeError, match="Padding size should be less than"):
        _mel_item(MEL.samples - 1)


@pytest.mark.filterwarnings("ignore:kernel_size exceeds volume extent")
def test_f0_w2v_denoise_and_speechsr_take_a_single_sample(reference_dir):
    from transformers import Wav2Vec2Model

    from hierspeech.f0 import extract_f0
    from hierspeech.speechsr import SpeechSR
    from hierspeech.speechsr_batching import upsample_batch
    from hierspeech.testing.denoiser import tiny_denoiser
    from hierspeech.testing.w2v import tiny_wav2vec2_config
    from hierspeech.w2v import Wav2Vec2Features

    assert {name for name, m in EXTRACT_FEATURES.items() if m.samples == 1} == {"w2v", "f0", "tokens", "denoise"}
    one = _speech_like(1)
    assert extract_f0(one).shape == (16,)  # padded to 1280 samples: 16 frames
    w2v = Wav2Vec2Features(Wav2Vec2Model(tiny_wav2vec2_config()), layer=7)
    for backend in ("packed", "transformers"):
        assert w2v.extract([one], backend=backend)[0].shape[-1] == 4
    stage = ModelFeaturesStage(w2v=None)
    stage._denoiser, stage._denoise_meta = tiny_denoiser(), {}
    item = Item(id="x", row=0, fields={}, data={"audio": one})
    stage._denoise([item])  # the denoiser runs batches
    assert item.meta["denoised"]["num_samples"] == 1
    model = SpeechSR.from_pretrained(reference_dir / "weights" / "speechsr24k" / "G_340000.pth").fuse_weight_norm()
    out = upsample_batch(model, [torch.from_numpy(one)])[0]
    assert out.shape == (model.output_length(1),) and torch.isfinite(out).all()


@pytest.mark.filterwarnings("ignore:kernel_size exceeds volume extent", "ignore::RuntimeWarning")  # pYAAPT on tiny input
def test_voice_prompt_minimum_is_real():
    from hierspeech.f0 import F0ExtractionError, extract_f0

    assert PROMPT.samples == max(MEL.samples, YAAPT_UNPADDED_MIN_SAMPLES)
    for backend in ("fast", "amfm"):
        unpadded = {"pad_end": False, "f0_max": 1100.0, "dtype": np.float64, "backend": backend}  # as VC prompts
        assert extract_f0(_speech_like(YAAPT_UNPADDED_MIN_SAMPLES), **unpadded).size > 0
        with pytest.raises(F0ExtractionError):
            extract_f0(_speech_like(YAAPT_UNPADDED_MIN_SAMPLES - 1), **unpadded)


def test_extract_refuses_a_10_ms_clip_at_decode_naming_the_feature_and_the_minimum(tmp_path):
    sf.write(tmp_path / "short.wav", tone(0.01, 16000), 16000)
    sf.write(tmp_path / "ok.wav", tone(0.05, 16000), 16000)
    decode = extract_job(ExtractConfig(features=("mel",))).build_stages()[0]
    assert isinstance(decode, DecodeStage)
    item = Item(id="short", row=0, fields={"audio": str(tmp_path / "short.wav")})
    with pytest.raises(AudioError, match=r"too short: 160 samples \(10.0 ms at 16 kHz\); the mel feature .* needs at least 641 samples \(40.1 ms\)"):
        decode.process_item(item)
    assert "audio" not in item.data  # nothing written to the item before the check
    ok = Item(id="ok", row=0, fields={"audio": str(tmp_path / "ok.wav")})
    decode.process_item(ok)
    assert ok.data["audio"].size == 800


def test_synthesize_refuses_a_minimum_prompt_below_what_the_models_take():
    from pipeline.stages.synthesis_params import InputLimits
    from pipeline.synthesize import SynthesizeConfig, synthesize_job

    config = SynthesizeConfig(synthesizer="s.pth", mode="tts", modes=("tts",), ttv="t.pth", limits=InputLimits(min_prompt_seconds=0.01))
    with pytest.raises(ValueError, match=r"--min-prompt-seconds 0.01 is below .* 641 samples"):
        synthesize_job(config)


def test_prepare_workers_import_no_torch() -> None:
    """`hsp prepare`'s stages (decode, encode) and the minimum lengths run without torch.

    Importing torch cost each decode worker about 1.2 s of CPU for one constant (the mel's n_fft),
    which is most of a short job's start-up on a small machine; the check fails if torch comes back.
    """
    code = (
        "import sys\n"
        "from pipeline.prepare import PrepareConfig, prepare_job\n"
        "import pipeline.stages.min_length\n"
        "prepare_job(PrepareConfig()).stages()\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[3])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
