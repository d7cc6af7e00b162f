"""The scorer contract: what one quality metric declares, loads once, and returns for a batch.

A scorer is the library half of a scoring stage. It names its metric, the index columns it
fills, what else it needs beside the audio (a reference voice, a transcript), whether a GPU
helps it, and a version string for provenance. `load()` builds the model once (a stage calls
it in `setup()`, once per actor); `score(batch)` takes `ScoreInput`s and returns one plain
``{column: float}`` dict per input, in order. A bad input raises `ScoringInputError`, which a
stage's per-item retry turns into that row's error; the batch never writes a partial result.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from pipeline.errors import ConfigError

SCORE_EXTRA_HINT = "pip install 'hierspeech-pipeline[score]' (from a checkout: pip install '.[score]', or scripts/setup.sh)"

# import name -> what to install (the extra provides all but resemblyzer, whose declared
# `webrtcvad` dependency compiles C code; webrtcvad-wheels from the extra provides that module)
PACKAGE_FOR_MODULE = {
    "speechmos": "speechmos",
    "onnxruntime": "onnxruntime",
    "librosa": "librosa",
    "resemblyzer": "resemblyzer",
    "webrtcvad": "webrtcvad-wheels",
    "silero_vad": "silero-vad",
    "jiwer": "jiwer",
}


class ScoringError(ConfigError):
    """A scoring setup the user must fix: unknown metric, missing package or model, bad gate."""


class MissingScorerPackageError(ScoringError):
    """A metric's Python package is not installed."""


class ScoringInputError(ValueError):
    """One input cannot be scored (empty, non-finite, silent, no reference, no transcript)."""


def install_hint(modules: Sequence[str]) -> str:
    """The command that installs `modules`: the [score] extra, plus resemblyzer without its deps."""
    hint = SCORE_EXTRA_HINT
    if "resemblyzer" in modules:
        hint += " and then pip install --no-deps resemblyzer==0.1.4 (its declared webrtcvad compiles C; the extra's webrtcvad-wheels provides it)"
    return hint


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The modules of `modules` that cannot be imported here (checked without importing them)."""
    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package missing, or a module hidden in sys.modules
            found = False
        if not found:
            missing.append(module)
    return missing


def missing_package_error(metric: str, modules: Sequence[str], cause: BaseException | None = None) -> MissingScorerPackageError:
    """The one message for a metric whose packages are not installed."""
    packages = ", ".join(f"{PACKAGE_FOR_MODULE.get(m, m)} (module {m!r})" for m in modules)
    detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
    return MissingScorerPackageError(f"metric {metric!r} needs {packages}, not installed{detail}: {install_hint(modules)}")


def import_for(metric: str, module: str):
    """Import `module` for `metric`, turning ImportError into the usage error naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_package_error(metric, [module], exc) from exc


def package_version(distribution: str) -> str:
    """Installed version of a distribution, or 'unknown' (never fails provenance)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def resolve_device(device: str | None, gpu_helps: bool) -> str:
    """`device` as given, or CUDA when a GPU helps this scorer and torch sees one, else CPU."""
    if device is not None:
        return device
    if gpu_helps:
        import torch

        if torch.cuda.is_available():
            return "cuda"
    return "cpu"


@contextlib.contextmanager
def torch_threads(device: str, threads: int = 1) -> Iterator[None]:
    """Run small CPU models at `threads` intra-op threads, restoring the setting after.

    Speaker and VAD models are tiny per step: with more threads torch spends its time waking
    them (20x the CPU time on a busy 2-core machine, measured). A CPU job scales them by actors.
    """
    import torch

    if device != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class ScoreInput:
    """One thing to score: mono float32 audio at its own rate, and what some metrics compare it with.

    `reference` (speaker similarity: the voice it should have) and `text` (WER/CER: what it should
    say) are optional; a scorer that needs one and does not get it raises `ScoringInputError`.
    """

    audio: np.ndarray  # (T,) float32
    sample_rate: int = 16000
    reference: np.ndarray | None = None  # (T_ref,) float32
    reference_rate: int = 16000
    text: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "audio", _checked_wave(self.audio, self.sample_rate, "audio"))
        if self.reference is not None:
            object.__setattr__(self, "reference", _checked_wave(self.reference, self.reference_rate, "reference"))

    @property
    def duration(self) -> float:
        return self.audio.shape[0] / self.sample_rate


def _checked_wave(wave: np.ndarray, rate: int, what: str) -> np.ndarray:
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ScoringInputError(f"{what} must be mono (T,), got shape {wave.shape}; mix down or take one channel first")
    if wave.shape[0] == 0:
        raise ScoringInputError(f"{what} is empty (0 samples)")
    if not (isinstance(rate, int | np.integer) and rate > 0):
        raise ScoringInputError(f"{what} sample rate must be a positive integer, got {rate!r}")
    wave = wave.astype(np.float32, copy=False)
    if not np.all(np.isfinite(wave)):
        raise ScoringInputError(f"{what} has NaN or infinite samples")
    return wave


def at_rate(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """`wave` resampled to `target` Hz (the project's one resampler), unchanged when already there."""
    if rate == target:
        return wave
    from pipeline.io.audio import resample

    return resample(wave, rate, target)


class Scorer:
    """Base class of one metric. Subclasses set the class attributes and implement `_load`/`_score`."""

    name: ClassVar[str]  # the metric's name in --metrics
    columns: ClassVar[tuple[str, ...]]  # index columns, in the order `score` fills them
    needs: ClassVar[frozenset[str]] = frozenset()  # "reference" and/or "text"
    modules: ClassVar[tuple[str, ...]] = ()  # importable modules the metric needs
    gpu_helps: ClassVar[bool] = False  # whether the job should give this scorer a GPU

    def __init__(self, device: str | None = None) -> None:
        missing = missing_modules(self.modules)
        if missing:
            raise missing_package_error(self.name, missing)
        self.device = resolve_device(device, self.gpu_helps)
        self._loaded = False

    def load(self) -> None:
        """Build the model once (idempotent); a stage calls this in setup()."""
        if not self._loaded:
            self._load()
            self._loaded = True

    def version(self) -> str:
        """Package version and model id, recorded with every score for provenance."""
        raise NotImplementedError

    def score(self, batch: Sequence[ScoreInput]) -> list[dict[str, float]]:
        """One ``{column: value}`` per input, in order; raises on the first input it cannot score."""
        for position, sample in enumerate(batch):
            if "reference" in self.needs and sample.reference is None:
                raise ScoringInputError(f"[{self.name}] input {position} has no reference audio to compare with")
            if "text" in self.needs and not (sample.text or "").strip():
                raise ScoringInputError(f"[{self.name}] input {position} has no text to compare the transcript with")
        if not batch:
            return []
        self.load()
        results = self._score(list(batch))
        for position, result in enumerate(results):
            bad = [k for k, v in result.items() if not math.isfinite(v)]
            if bad:
                raise ScoringInputError(f"[{self.name}] input {position}: non-finite {', '.join(bad)}")
        return results

    def _load(self) -> None:
        """Build models; nothing by default (model-free metrics)."""

    def _score(self, batch: list[ScoreInput]) -> list[dict[str, float]]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r})"
