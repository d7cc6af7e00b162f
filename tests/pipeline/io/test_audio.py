import io
import os

import numpy as np
import pytest
import soundfile as sf
import soxr

from pipeline.io.audio import DECODE_BLOCK_FRAMES, AudioError, decode_audio, encode_flac, read_bytes
from pipeline.io.audio_source import file_problem
from tests.pipeline.conftest import tone


def _audio_bytes(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt)
    return buffer.getvalue()


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


# -- hostile inputs: refused before a byte is read, never a hang --------------------------------------
def _flac_without_length(path, samples, rate):
    """A FLAC whose STREAMINFO says 'total samples unknown' (0), as a writer to a pipe leaves it."""
    sf.write(path, samples, rate, format="FLAC")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # the first metadata block is STREAMINFO
    info = 8  # after "fLaC" and the 4-byte block header
    data[info + 13] &= 0xF0  # total samples: the low 4 bits of byte 13 and bytes 14..17 (36 bits)
    data[info + 14 : info + 18] = b"\0\0\0\0"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.timeout(30)
def test_fifo_devices_directories_and_links_to_them_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    (tmp_path / "link_to_pipe.wav").symlink_to(fifo)
    (tmp_path / "link_to_zero.wav").symlink_to("/dev/zero")
    (tmp_path / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    (tmp_path / "folder.wav").mkdir()
    cases = {
        str(fifo): "FIFO",
        str(tmp_path / "link_to_pipe.wav"): "FIFO",
        "/dev/zero": "character device",
        str(tmp_path / "link_to_zero.wav"): "character device",
        str(tmp_path / "folder.wav"): "directory",
        str(tmp_path / "dangling.wav"): "not found",
    }
    for path, reason in cases.items():
        with pytest.raises(AudioError, match=reason):
            decode_audio(path, target_sample_rate=16000, max_seconds=10)
        assert reason in file_problem(path)  # what `hsp manifest validate` and --strict report
    with pytest.raises(OSError, match="FIFO"):
        read_bytes(str(fifo))  # job YAML and other reads share the guard
    with pytest.raises(FileNotFoundError, match="not found"):
        read_bytes(str(tmp_path / "gone.yaml"))


def test_audio_that_resamples_to_no_sample_is_an_error(tmp_path):
    sf.write(tmp_path / "one.wav", np.array([0.25], dtype=np.float32), 44100)
    with pytest.raises(AudioError, match=r"1 sample\(s\) at 44100 Hz .* no sample at 16000 Hz"):
        decode_audio(str(tmp_path / "one.wav"), target_sample_rate=16000)
    kept = decode_audio(str(tmp_path / "one.wav"))  # at its own rate the sample is usable
    assert kept.samples.shape == (1,)
    with pytest.raises(AudioError, match="at least one sample"):
        encode_flac(np.zeros(0, dtype=np.float32), 16000)


def test_encoded_flac_is_decoded_before_it_is_returned(monkeypatch):
    samples = tone(0.1, 16000)
    assert sf.info(io.BytesIO(encode_flac(samples, 16000))).frames == samples.size
    real_write = sf.write

    def short_write(file, data, *args, **kwargs):  # an encoder that loses the last frames
        real_write(file, data[:-10], *args, **kwargs)

    monkeypatch.setattr(sf, "write", short_write)
    with pytest.raises(AudioError, match=f"declares {samples.size - 10} frames.*expected {samples.size} frames"):
        encode_flac(samples, 16000)

    def cut_write(file, data, *args, **kwargs):  # a stream whose header is right but whose end is missing
        real_write(file, data, *args, **kwargs)
        file.truncate(file.tell() * 2 // 3)

    monkeypatch.setattr(sf, "write", cut_write)
    with pytest.raises(AudioError, match=r"does not decode|ends after"):
        encode_flac(samples, 16000)


def test_streamed_flac_without_length_is_decoded_to_its_end_and_bounded(tmp_path):
    samples = tone(2.5, 16000)
    path = _flac_without_length(tmp_path / "stream.flac", samples, 16000)
    assert sf.info(str(path)).frames > 1 << 62  # libsndfile: length unknown
    decoded = decode_audio(str(path), max_seconds=3600)
    reference = decode_audio(_audio_bytes(samples, 16000, "FLAC"))
    assert decoded.source_frames == samples.size and not decoded.truncated
    np.testing.assert_array_equal(decoded.samples, reference.samples)
    resampled = decode_audio(str(path), target_sample_rate=8000, max_seconds=3600)
    assert resampled.samples.size == samples.size // 2
    with pytest.raises(AudioError, match=r"over the limit of 1 s.*header gives no length"):
        decode_audio(str(path), max_seconds=1)


def test_wav_cut_short_is_kept_and_flagged_truncated(tmp_path):
    samples = tone(1.0, 16000)
    sf.write(tmp_path / "full.wav", samples, 16000, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: 44 + 2 * 6000])  # header + 6000 of 16000 frames
    cut = decode_audio(str(tmp_path / "cut.wav"))
    assert cut.truncated and cut.declared_frames == 16000 and cut.source_frames == 6000
    np.testing.assert_array_equal(cut.samples, decode_audio(str(tmp_path / "full.wav")).samples[:6000])
    assert not decode_audio(str(tmp_path / "full.wav")).truncated
    streamed = bytearray(data)  # a writer that could not seek back leaves the data size at 0xFFFFFFFF
    streamed[40:44] = b"\xff\xff\xff\xff"
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    assert not decode_audio(str(tmp_path / "streamed.wav")).truncated
    rf64 = tmp_path / "big.wav"
    sf.write(rf64, samples, 16000, format="RF64", subtype="PCM_16")
    (tmp_path / "big_cut.wav").write_bytes(rf64.read_bytes()[: -2 * 1000])
    rf64_cut = decode_audio(str(tmp_path / "big_cut.wav"))
    assert rf64_cut.truncated and rf64_cut.declared_frames == 16000 and rf64_cut.source_frames == 15000


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_block_decode_equals_one_shot_decode(tmp_path, channels):
    """Bit-equal to decoding whole (no resampling); the streamed soxr resampler equals soxr.resample."""
    rng = np.random.default_rng(channels)
    frames = 3 * DECODE_BLOCK_FRAMES + 1234  # several blocks and a partial one
    audio = (0.3 * rng.standard_normal((frames, channels))).astype(np.float32)
    path = tmp_path / "multi.wav"
    sf.write(path, audio, 44100, subtype="FLOAT")
    whole, _ = sf.read(str(path), dtype="float32", always_2d=True)
    for policy, expect in (("first", whole[:, 0]), ("mean", whole.mean(axis=1))):
        expect = np.ascontiguousarray(expect, dtype=np.float32)
        native = decode_audio(str(path), channel_policy=policy)
        np.testing.assert_array_equal(native.samples, expect)
        for rate in (16000, 48000):
            streamed = decode_audio(str(path), target_sample_rate=rate, channel_policy=policy)
            one_shot = soxr.resample(expect, 44100, rate, quality="HQ")
            assert streamed.samples.shape == one_shot.shape
            np.testing.assert_allclose(streamed.samples, one_shot, rtol=0, atol=1e-6)  # measured: 0.0
    with open(path, "rb") as handle:  # bytes (tar members) decode the same way
        np.testing.assert_array_equal(decode_audio(handle.read()).samples, whole[:, 0])
