"""Make the bundled example corpus with espeak-ng (run once; the output is committed).

A tiny LibriTTS-style corpus: speaker/chapter/speaker_chapter_utt.flac with .normalized.txt
transcripts, three synthetic voices, plus one stereo 44.1 kHz and one 8 kHz file so the
examples exercise downmixing and resampling. Usage: python manifests/make_examples.py
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1] / "pipeline" / "examples"
VOICES = {"1001": ("en-us+m3", 45), "1002": ("en-gb+f2", 60), "1003": ("en-us+f4", 70)}
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Speech synthesis turns written text into sound.",
    "A pipeline processes many files in parallel.",
]


def speak(text: str, voice: str, pitch: int) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "x.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", "150", "-w", str(wav), text], check=True)
        audio, rate = sf.read(wav, dtype="float32")
    return audio, rate


def main() -> None:
    audio_root = ROOT / "audio"
    for speaker, (voice, pitch) in VOICES.items():
        for n, text in enumerate(SENTENCES[:2] if speaker != "1001" else SENTENCES):
            audio, rate = speak(text, voice, pitch)
            folder = audio_root / speaker / "10"
            folder.mkdir(parents=True, exist_ok=True)
            stem = folder / f"{speaker}_10_{n:06d}"
            if speaker == "1002" and n == 1:  # stereo 44.1 kHz: right channel quieter
                up = soxr.resample(audio, rate, 44100)
                sf.write(f"{stem}.flac", np.stack([up, 0.5 * up], axis=1), 44100, subtype="PCM_16")
            elif speaker == "1003" and n == 1:  # narrowband 8 kHz
                sf.write(f"{stem}.flac", soxr.resample(audio, rate, 8000), 8000, subtype="PCM_16")
            else:
                sf.write(f"{stem}.flac", audio, rate, subtype="PCM_16")
            Path(f"{stem}.normalized.txt").write_text(text, encoding="utf-8")
    print(f"wrote examples under {audio_root}")


if __name__ == "__main__":
    main()
