import io

import numpy as np
import pytest
import soundfile as sf

from pipeline.audio import AudioError, decode_audio, encode_flac
from tests.pipeline.conftest import tone


def test_decode_resamples_and_keeps_first_channel(tmp_path):
    path = tmp_path / "s.wav"
    sf.write(path, tone(0.5, 44100, channels=2), 44100)
    first = decode_audio(str(path), target_sample_rate=16000)
    mean = decode_audio(str(path), target_sample_rate=16000, channel_policy="mean")
    assert first.sample_rate == 16000 and len(first.samples) == 8000
    assert first.source_channels == 2 and first.source_sample_rate == 44100
    # channel 1 is half of channel 0, so the mean is 0.75 of the first channel
    np.testing.assert_allclose(mean.samples, 0.75 * first.samples, atol=1e-4)


def test_decode_errors_say_what_is_wrong(tmp_path):
    (tmp_path / "c.wav").write_bytes(b"not audio at all" * 20)
    with pytest.raises(AudioError, match="cannot decode"):
        decode_audio(str(tmp_path / "c.wav"))
    with pytest.raises(AudioError, match="not found"):
        decode_audio(str(tmp_path / "nope.wav"))
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="0 bytes"):
        decode_audio(str(tmp_path / "zero.wav"))
    sf.write(tmp_path / "long.wav", tone(3.0, 8000), 8000)
    with pytest.raises(AudioError, match="over the limit of 2 s"):
        decode_audio(str(tmp_path / "long.wav"), max_seconds=2)


def test_flac_round_trip_16_and_24_bit():
    samples = tone(0.25, 16000)
    for bits, atol in ((16, 1 / 32768), (24, 1 / 2**23)):
        decoded, rate = sf.read(io.BytesIO(encode_flac(samples, 16000, bits)), dtype="float32")
        assert rate == 16000
        np.testing.assert_allclose(decoded, samples, atol=atol)
