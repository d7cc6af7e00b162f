"""`hsp extract` on a real local Ray (tiny random w2v and denoiser), then `hsp export upstream`.

One job run over the kit's four reference clips plus bad rows; the tests read the shards back
with webdataset and compare every feature with the front-ends and the kit's goldens.
"""

from __future__ import annotations

import dataclasses
import glob
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
import webdataset as wds
from click.testing import CliRunner

from hierspeech.testing.f0 import assert_f0_parity
from pipeline.cli import main

REFS = [f"reference_{i}" for i in range(1, 5)]


def _tiny_models(root: Path) -> tuple[Path, Path]:
    from transformers import Wav2Vec2Model

    from hierspeech.denoiser import Denoiser, DenoiserConfig
    from hierspeech.testing.w2v import tiny_wav2vec2_config

    torch.manual_seed(0)
    w2v_dir = root / "tiny-mms"
    Wav2Vec2Model(tiny_wav2vec2_config(num_hidden_layers=8)).save_pretrained(w2v_dir)
    # official STFT (n_fft 400, hop 100), tiny network: fast on 3 s clips
    config = DenoiserConfig(dense_channel=8, num_tsconformers=1)
    denoiser = Denoiser.from_config(config)
    (root / "den").mkdir()
    torch.save({"generator": denoiser.state_dict()}, root / "den" / "g_best")
    (root / "den" / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    return w2v_dir, root / "den" / "g_best"


def _npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, reference_dir, ray_local):
    root = tmp_path_factory.mktemp("extract")
    w2v_dir, den_ckpt = _tiny_models(root)
    audio_dir = reference_dir / "audio"
    rows = [
        {"id": ref, "audio": str(audio_dir / f"{ref}.wav"), "text": (audio_dir / f"{ref}.txt").read_text().strip(), "language": "en-us" if ref == "reference_2" else None}
        for ref in REFS
    ]
    sf.write(root / "silence.wav", np.zeros(8000, dtype=np.float32), 16000)
    rows += [
        # espeak's cmn voice switches language and emits "(en)": not in the symbol table
        {"id": "unknown_char", "audio": str(audio_dir / "reference_1.wav"), "text": "ni hao ma", "language": "cmn"},
        {"id": "empty_text", "audio": str(audio_dir / "reference_1.wav"), "text": "", "language": None},
        {"id": "no_text", "audio": str(audio_dir / "reference_1.wav"), "text": None, "language": None},
        {"id": "silence", "audio": str(root / "silence.wav"), "text": "hello", "language": None},
        {"id": "missing", "audio": str(root / "nope.wav"), "text": "hello", "language": None},
    ]
    manifest = root / "m.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema([("id", pa.string()), ("audio", pa.string()), ("text", pa.string()), ("language", pa.string())])), manifest)
    out = root / "out"
    args = [
        "extract", str(manifest), "-o", str(out),
        "--features", "w2v,f0,tokens,mel,denoise",
        "--w2v-model", str(w2v_dir), "--denoiser-ckpt", str(den_ckpt),
        "--cpu-actors", "2", "--gpu-actors", "1", "--batch-seconds", "10",
        "--f0-backend", "amfm",  # the reference implementation: F0 within the golden parity criteria
        "--rows-per-shard", "3", "--no-progress",
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    samples = list(wds.WebDataset(sorted(glob.glob(f"{out}/shards/*.tar")), shardshuffle=False, empty_check=False))
    by_id = {json.loads(s["json"])["id"]: s for s in samples}
    return {"root": root, "out": out, "rows": rows, "samples": samples, "by_id": by_id, "w2v_dir": w2v_dir, "den": den_ckpt}


def test_every_row_once_with_readable_errors(extracted):
    out = extracted["out"]
    index = pq.read_table(out / "index.parquet").to_pylist()
    errors = {r["id"]: r for r in pq.read_table(out / "errors.parquet").to_pylist()}
    written = [r["id"] for r in index]
    assert sorted(written + list(errors)) == sorted(r["id"] for r in extracted["rows"])
    assert sorted(written) == REFS and len(extracted["samples"]) == 4
    assert errors["unknown_char"]["stage"] == "tokens" and "'('" in errors["unknown_char"]["message"]
    assert errors["empty_text"]["error"] == "EmptyTextError"
    assert "no text" in errors["no_text"]["message"]
    assert errors["silence"]["stage"] == "f0_mel" and "no voiced frame" in errors["silence"]["message"]
    assert errors["missing"]["stage"] == "decode" and "not found" in errors["missing"]["message"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["samples_out"] == 4 and summary["errors"] == 5


def test_features_equal_frontends_and_goldens(extracted, reference_dir):
    from hierspeech.denoiser import Denoiser, denoise
    from hierspeech.text import frontend_versions, text_to_tokens
    from hierspeech.w2v import Wav2Vec2Features, num_frames

    golden_text = json.loads((reference_dir / "golden/text/text_frontend.phonemizer-3.2.1.json").read_text())
    index = {r["id"]: r for r in pq.read_table(extracted["out"] / "index.parquet").to_pylist()}
    w2v_model = Wav2Vec2Features.from_pretrained(extracted["w2v_dir"])
    denoiser = Denoiser.from_pretrained(extracted["den"])
    for ref in REFS:
        sample = extracted["by_id"][ref]
        meta = json.loads(sample["json"])
        audio, rate = sf.read(io.BytesIO(sample["flac"]), dtype="float32")
        original, _ = sf.read(reference_dir / "audio" / f"{ref}.wav", dtype="float32")
        assert rate == 16000 and np.array_equal(audio, original)  # 16-bit input: stored bit-exact
        n = audio.shape[0]

        f0 = _npy(sample["f0.npy"])
        golden_f0 = np.load(reference_dir / f"golden/yaapt/{ref}.extract_f0.f0.npy")[0]
        assert f0.dtype == np.float32 and f0.shape == golden_f0.shape, ref
        assert_f0_parity(golden_f0, f0, ref)  # pYAAPT's near-tie frames depend on the BLAS kernel

        w2v = _npy(sample["w2v.npy"])
        expected = w2v_model.extract([audio])[0].numpy()
        assert w2v.dtype == np.float16 and w2v.shape == (32, num_frames(n)) == expected.shape
        np.testing.assert_allclose(w2v.astype(np.float32), expected.astype(np.float32), atol=2e-3, rtol=1e-3)
        assert f0.shape[0] == 4 * w2v.shape[1]

        mel = _npy(sample["mel.npy"])
        assert mel.dtype == np.float32 and mel.shape == (80, n // 320)
        if ref in ("reference_1", "reference_2"):  # goldens computed on torchaudio.load of the same wav
            golden_mel = np.load(reference_dir / f"golden/synthetic/mel.{ref}.npy")[0]
            assert np.abs(mel - golden_mel).max() < 1e-4

        tokens = _npy(sample["tokens.npy"])
        text = (reference_dir / "audio" / f"{ref}.txt").read_text().strip()
        assert tokens.dtype == np.int64 and tokens.tolist() == text_to_tokens(text)
        if frontend_versions()["phonemizer"] == "3.2.1":
            assert tokens.tolist() == golden_text["examples"][f"{ref}.txt"]["file_text_plain"]["ids_with_blanks"]

        padded = torch.nn.functional.pad(torch.from_numpy(audio), (0, -n % 1600))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as the stage on a 1-CPU actor: the random tiny MP-SENet is sensitive to summation order
        try:
            clean = denoise(padded, denoiser)[0, :n].numpy()
        finally:
            torch.set_num_threads(threads)
        stored_clean, _ = sf.read(io.BytesIO(sample["denoised.flac"]), dtype="float32")
        assert stored_clean.shape == (n,) and np.abs(stored_clean - np.clip(clean, -1, 1)).max() <= 1.5 / 32768

        assert meta["tokens"]["language"] == "en-us" and meta["tokens"]["versions"]["phonemizer"]
        assert meta["tokens"]["versions"]["espeak-ng"]
        assert meta["w2v"]["shape"] == list(w2v.shape) and meta["w2v"]["layer"] == 7
        assert meta["w2v"]["backend"] == "packed" and meta["w2v"]["linear"] in {"oneDNN", "torch"}  # the CPU default
        assert meta["f0"]["failed"] is False and meta["f0"]["yaapt"]["nccf_thresh1"] == 0.25
        assert meta["denoised"]["sha256"] and meta["mel"]["n_fft"] == 1280
        row = index[ref]
        assert (row["w2v_frames"], row["f0_frames"], row["mel_frames"], row["token_count"]) == (w2v.shape[1], f0.shape[0], mel.shape[1], tokens.shape[0])
        assert row["phoneme_count"] * 2 + 1 == row["token_count"] and row["duration"] == n / 16000 and row["denoised"]


def test_export_upstream_layout_loads_as_upstream_does(extracted):
    to = extracted["root"] / "upstream"
    result = CliRunner().invoke(main, ["export", "upstream", str(extracted["out"]), "--to", str(to), "--test-count", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((to / "export.json").read_text())
    index = {r["key"]: r for r in pq.read_table(extracted["out"] / "index.parquet").to_pylist()}
    # prepare_filelist.py: 2 * tokens + 1 <= samples // 320 (= 150 here) drops the longer sentences
    expected_kept = sorted(k for k, r in index.items() if r["phoneme_count"] * 2 + 1 <= r["num_samples"] // 320)
    assert 0 < len(expected_kept) < 4 and report["kept"] == len(expected_kept)
    assert report["rejected"] == {"text_longer_than_audio": 4 - len(expected_kept)}
    lists = {(split, kind): (to / "filelists" / f"{split}_{kind}.txt").read_text().splitlines() for split in ("train", "test") for kind in ("wav", "f0", "token", "w2v")}
    assert len(lists[("test", "wav")]) == 1 and len(lists[("train", "wav")]) == len(expected_kept) - 1
    keys = sorted(Path(p).stem for p in lists[("train", "wav")] + lists[("test", "wav")])
    assert keys == expected_kept
    for split in ("train", "test"):
        wavs = lists[(split, "wav")]
        for i, wav_path in enumerate(wavs):
            key = Path(wav_path).stem
            # the loader pairs line i of each list
            assert [Path(lists[(split, k)][i]).stem for k in ("f0", "token", "w2v")] == [key] * 3
            sample = extracted["by_id"][index[key]["id"]]
            audio, rate = sf.read(wav_path, dtype="int16")
            stored, _ = sf.read(io.BytesIO(sample["flac"]), dtype="int16")
            assert rate == 16000 and np.array_equal(audio, stored) and sf.info(wav_path).subtype == "PCM_16"
            f0 = torch.load(lists[(split, "f0")][i], weights_only=True)
            w2v = torch.load(lists[(split, "w2v")][i], weights_only=True)
            token = torch.load(lists[(split, "token")][i], weights_only=True)
            assert f0.dtype == torch.float32 and f0.shape == (1, 4 * w2v.shape[-1]) and f0.sum() != 0
            assert w2v.dtype == torch.float32 and w2v.shape == (1, 32, index[key]["w2v_frames"])
            assert torch.equal(w2v[0], torch.from_numpy(_npy(sample["w2v.npy"]).astype(np.float32)))
            assert token.dtype == torch.int64 and token.dim() == 1
            assert torch.equal(token, torch.from_numpy(_npy(sample["tokens.npy"])[1::2]))  # loader re-adds blanks
            assert 1 <= token.shape[0] <= 200 and 2 * token.shape[0] + 1 <= audio.shape[0] // 320
            # what AudioDataset.__getitem__ does with them (segment_size 192000)
            w2v_seg = torch.nn.functional.pad(w2v.squeeze(0), (0, 192000 // 320 - w2v.shape[-1]))
            f0_seg = torch.nn.functional.pad(f0, (0, 192000 // 80 - f0.shape[-1]))
            assert w2v_seg.shape == (32, 600) and f0_seg.shape == (1, 2400)


def test_f0_failure_zeros_policy_flags_instead_of_failing():
    from pipeline.engine.item import Item
    from pipeline.stages.f0_mel import F0MelStage

    stage = F0MelStage(f0_failure="zeros", mel=False)
    stage.setup()
    item = Item(id="s", row=0, fields={}, data={"audio": np.zeros(4000, dtype=np.float32)})
    stage([item])
    assert not item.failed
    f0 = _npy(item.members["f0.npy"])
    assert f0.shape == (64,) and not f0.any()
    assert item.meta["f0"]["failed"] is True and "no voiced frame" in item.meta["f0"]["failure"]
    assert item.index["f0_failed"] is True
    strict = F0MelStage(mel=False)
    strict.setup()
    other = Item(id="s", row=0, fields={}, data={"audio": np.zeros(4000, dtype=np.float32)})
    strict([other])
    assert other.failed and other.error.error == "F0ExtractionError"


def test_export_filters_follow_prepare_filelist():
    from pipeline.export.upstream import UpstreamFilters, _reject_reason

    f = UpstreamFilters()
    voiced = np.ones(10, dtype=np.float32)
    assert _reject_reason(np.zeros(10), 48000, 10, f) == "f0_all_zero"
    assert _reject_reason(voiced, 31 * 320 + 319, 1, f) == "short_audio"
    assert _reject_reason(voiced, 601 * 320, 1, f) == "long_audio"
    assert _reject_reason(voiced, 32 * 320, 16, f) == "text_longer_than_audio"
    assert _reject_reason(voiced, 32 * 320, 15, f) is None
    assert _reject_reason(voiced, 600 * 320 + 319, 0, f) == "text_length"
    assert _reject_reason(voiced, 600 * 320, 201, f) == "text_length"
    assert _reject_reason(voiced, 600 * 320, 200, f) is None


def test_cli_refuses_bad_feature_lists(tmp_path):
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"id": ["a"], "audio": ["a.wav"]}), manifest)
    result = CliRunner().invoke(main, ["extract", str(manifest), "-o", str(tmp_path / "o"), "--features", "w2v,pitch"])
    assert result.exit_code == 2 and "pitch" in result.output
    result = CliRunner().invoke(main, ["extract", str(manifest), "-o", str(tmp_path / "o"), "--features", "denoise"])
    assert result.exit_code == 2 and "--denoiser-ckpt" in result.output


def test_config_refuses_unknown_w2v_backend():
    from pipeline.extract import ExtractConfig

    with pytest.raises(ValueError, match="w2v backend must be one of auto, packed, transformers"):
        ExtractConfig(w2v_backend="gpu-fast")
    assert ExtractConfig(w2v_backend="transformers").output_options() == ExtractConfig().output_options()
    from hierspeech.w2v import BACKENDS

    backend_option = next(p for p in main.commands["extract"].params if p.name == "w2v_backend")
    assert tuple(backend_option.type.choices) == BACKENDS  # the CLI offers exactly what the library takes
