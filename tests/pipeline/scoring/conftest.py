"""Real speech for the scorer tests: the kit's four LibriTTS clips (four speakers) and the bundled
espeak-ng examples, decoded once per session at their own rate and at 16 kHz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "pipeline" / "examples" / "audio"


@pytest.fixture(scope="session")
def kit_speech(reference_dir: Path) -> dict[str, np.ndarray]:
    """reference_1..4: 3 s of 16 kHz speech each, one speaker per clip."""
    from pipeline.io.audio import decode_audio

    return {f"reference_{i}": decode_audio(str(reference_dir / "audio" / f"reference_{i}.wav")).samples for i in range(1, 5)}


@pytest.fixture(scope="session")
def example_speech() -> dict[str, np.ndarray]:
    """Two bundled examples (espeak-ng, 22.05 kHz in the file) resampled to 16 kHz."""
    from pipeline.io.audio import decode_audio

    names = ["1001/10/1001_10_000000", "1003/10/1003_10_000000"]
    return {name: decode_audio(str(EXAMPLES / f"{name}.flac"), target_sample_rate=16000).samples for name in names}

