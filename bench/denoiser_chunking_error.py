"""How far chunked `denoise` is from the one-piece result, for several chunk / overlap lengths.

MP-SENet attends over all frames and instance-normalises over the whole input, so chunking is an
approximation. Input: the kit's four example utterances (real speech, 12 s) plus seeded white noise at
about 5 dB SNR. Weights: the kit's synthetic rule (the real `g_best` is not available), which makes the
attention close to uniform; real weights may behave differently, so read the numbers as indicative.

    python bench/denoiser_chunking_error.py [--reference-dir ../shared/reference]  (default: $HSP_REFERENCE_DIR or ../shared/reference)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import soundfile as sf
import torch

from hierspeech.denoiser import Denoiser, DenoiserConfig, denoise
from hierspeech.testing.synthetic_weights import load_synthetic_weights

REPO = Path(__file__).resolve().parents[1]
SETTINGS = [(2.0, 0.5), (4.0, 1.0), (4.0, 2.0), (6.0, 1.0), (8.0, 2.0), (10.0, 2.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-dir", type=Path,
                        default=Path(os.environ.get("HSP_REFERENCE_DIR", REPO.parent / "shared" / "reference")))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    speech = torch.cat([
        torch.from_numpy(sf.read(args.reference_dir / "audio" / f"reference_{i}.wav", dtype="float32")[0])
        for i in range(1, 5)
    ])
    noise = torch.randn(speech.shape, generator=torch.Generator().manual_seed(0))
    noisy = speech + noise * speech.pow(2).mean().sqrt() * 10 ** (-5 / 20)
    model = load_synthetic_weights(Denoiser(DenoiserConfig()))

    whole = denoise(noisy, model, chunk_seconds=None)[0]
    print(f"input {noisy.numel() / 16000:.1f} s; one-piece output rms {whole.pow(2).mean().sqrt():.4f}, "
          f"max abs {whole.abs().max():.4f}")
    print("| chunk s | overlap s | max abs diff | rms diff / rms | SNR vs one piece (dB) |")
    print("|---|---|---|---|---|")
    for chunk, overlap in SETTINGS:
        out = denoise(noisy, model, chunk_seconds=chunk, overlap_seconds=overlap)[0]
        err = out - whole
        ratio = (err.pow(2).mean() / whole.pow(2).mean()).sqrt().item()
        print(f"| {chunk:g} | {overlap:g} | {err.abs().max():.2e} | {ratio:.2e} | {-20 * torch.log10(torch.tensor(ratio)):.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
