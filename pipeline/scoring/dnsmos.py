"""DNSMOS P.835: predicted signal (SIG), background (BAK) and overall (OVRL) quality, 1-5.

Microsoft's non-intrusive MOS predictor as the `speechmos` wheel ships it (its ONNX models are
inside the wheel, MIT licence; no download). It judges 9.01 s windows with a 1 s hop and
averages them; shorter clips are tiled by doubling until they fill one (a 3 s clip becomes 12 s,
three windows). That overlap makes it the costly scorer (about 3 audio seconds per CPU-second,
bench/bench_scorers.py): give it CPU actors. It runs on CPU: speechmos
builds its ONNX Runtime sessions itself, with the CPU provider. Inputs are resampled to 16 kHz
and clipped to [-1, 1] (speechmos refuses anything outside; resampling can overshoot a hair).
"""

from __future__ import annotations

import numpy as np

from pipeline.scoring.base import ScoreInput, Scorer, at_rate, import_for, package_version

RATE = 16000
WINDOW_SAMPLES = int(9.01 * RATE)  # speechmos's window; it hops by 1 s


class DnsmosScorer(Scorer):
    """`dnsmos_sig`, `dnsmos_bak`, `dnsmos_ovrl` (the non-personalized P.835 model)."""

    name = "dnsmos"
    columns = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
    modules = ("speechmos", "onnxruntime", "librosa")

    def __init__(self, device: str | None = None) -> None:
        super().__init__("cpu" if device is None else device)
        self._run = None

    def version(self) -> str:
        return f"speechmos {package_version('speechmos')} dnsmos p835 (dnsmos_models/sig_bak_ovr.onnx), onnxruntime {package_version('onnxruntime')}"

    def _load(self) -> None:
        for module in self.modules:
            import_for(self.name, module)
        from speechmos import dnsmos

        self._run = dnsmos.run
        # speechmos builds its sessions on first use: do it now, so setup() pays and fails, not a row
        # (one 9.01 s window; a shorter clip is tiled by doubling, to up to three windows)
        self._run(np.zeros(WINDOW_SAMPLES, dtype=np.float32), RATE)

    def _score(self, batch: list[ScoreInput]) -> list[dict[str, float]]:
        results = []
        for sample in batch:
            wave = np.clip(at_rate(sample.audio, sample.sample_rate, RATE), -1.0, 1.0)
            out = self._run(wave, RATE)
            results.append({"dnsmos_sig": float(out["sig_mos"]), "dnsmos_bak": float(out["bak_mos"]), "dnsmos_ovrl": float(out["ovrl_mos"])})
        return results
