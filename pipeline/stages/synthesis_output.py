"""Synthesis output: peak normalisation and int16 as upstream, quality gates, the FLAC member, provenance."""

from __future__ import annotations

import math

import numpy as np

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage
from pipeline.io.audio import encode_pcm16_flac
from pipeline.stages.synthesis_params import GateLimits


class SynthesisOutputStage(Stage):
    """Peak normalisation and int16 as upstream, quality gates, FLAC member, provenance and index."""

    name = "synth_output"
    batch_size = 8
    inputs = ("raw", "raw_rate", "params", "prompt_peak")
    optional_inputs = ("expected_seconds",)  # the duration gate is skipped without it

    def __init__(self, *, gates: GateLimits, drop_failed_gates: bool = False, resources: Resources | None = None):
        super().__init__(resources)
        self.gates = gates
        self.drop_failed_gates = drop_failed_gates

    def process_item(self, item: Item) -> None:
        raw = np.asarray(item.data.pop("raw"), dtype=np.float32)
        rate = int(item.data["raw_rate"])
        failures = []
        finite = bool(np.all(np.isfinite(raw)))
        if not finite:
            failures.append("non_finite")
            raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
        rms = float(np.sqrt(np.mean(np.square(raw, dtype=np.float64)))) if raw.size else 0.0
        rms_dbfs = 20 * math.log10(rms) if rms > 0 else -math.inf
        if rms_dbfs < self.gates.min_rms_dbfs:
            failures.append("near_silence")
        clipped = float(np.mean(np.abs(raw) >= 0.999)) if raw.size else 0.0
        if clipped > self.gates.max_clipped_fraction:
            failures.append("clipping")
        duration = raw.shape[0] / rate
        expected = float(item.data.get("expected_seconds") or 0.0)
        ratio = duration / expected if expected > 0 else math.inf
        if not self.gates.min_duration_ratio <= ratio <= self.gates.max_duration_ratio:
            failures.append("duration_ratio")

        params = item.data["params"]
        peak = float(np.max(np.abs(raw))) if raw.size else 0.0
        target = 32767.0 * item.data["prompt_peak"] if params["scale_norm"] == "prompt" else 32767.0 * 0.999
        pcm = (raw / peak * target).astype(np.int16) if peak > 0 else np.zeros(raw.shape, dtype=np.int16)  # truncation, as upstream
        gates = {
            "passed": not failures,
            "failed": failures,
            "rms_dbfs": rms_dbfs,
            "clipped_fraction": clipped,
            "duration_ratio": ratio,
            "expected_seconds": expected,
            "limits": self.gates.__dict__,
        }
        if failures and self.drop_failed_gates:
            item.fail(self.name, f"quality gate(s) failed: {', '.join(failures)} (rms {rms_dbfs:.1f} dBFS, clipped {clipped:.4f}, duration ratio {ratio:.2f})", error="QualityGate")
            return
        item.members["flac"] = encode_pcm16_flac(pcm, rate)  # checked: never a member that does not decode
        item.meta.update({"sample_rate": rate, "duration": duration, "num_samples": int(raw.shape[0]), "gates": gates, "timings": dict(item.timings)})
        item.index.update({"sample_rate": rate, "duration": duration, "gates_passed": not failures, "gate_failures": ",".join(failures)})

