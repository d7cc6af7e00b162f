"""Extract's F0 and mel: YAAPT F0 (`f0.npy`, 200 Hz) and the synthesizer's log-mel (`mel.npy`, 50 Hz).

A CPU actor pool of its own, so the model actors never wait while a CPU worker runs YAAPT.
"""

from __future__ import annotations

import time

import numpy as np

from hierspeech.defaults import SAMPLE_RATE
from hierspeech.f0 import DEFAULT_BACKEND as DEFAULT_F0_BACKEND
from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage
from pipeline.io.npy import npy_bytes


class F0MelStage(Stage):
    """YAAPT F0 (200 Hz) and the synthesizer's log-mel (50 Hz) of the stored audio.

    A stateful stage so its actor pool (`--cpu-actors`) is sized separately from the model
    actors; YAAPT is the slow step, one item per actor at a time.

    F0 failures (YAAPT raised, wrong frame count, no voiced frame at all) fail the row, or with
    ``f0_failure="zeros"`` store zeros and set ``f0.failed`` in the json and the index.
    """

    name = "f0_mel"
    stateful = True
    batch_size = 1
    inputs = ("audio",)
    input_rows_per_block = 1  # one item per actor call, spread over the whole pool

    def __init__(
        self,
        *,
        f0: bool = True,
        mel: bool = True,
        f0_max: float | None = None,
        f0_backend: str = DEFAULT_F0_BACKEND,
        f0_failure: str = "error",
        resources: Resources | None = None,
    ):
        super().__init__(resources)
        if f0_failure not in ("error", "zeros"):
            raise ValueError(f"f0_failure must be 'error' or 'zeros', got {f0_failure!r}")
        self.f0 = f0
        self.mel = mel
        self.f0_max = f0_max
        self.f0_backend = f0_backend
        self.f0_failure = f0_failure
        self._mel = None

    def setup(self) -> None:
        import torch

        from hierspeech.f0 import get_backend
        from hierspeech.mel import MelConfig, MelSpectrogram

        torch.set_num_threads(max(1, int(self.resources.num_cpus)))
        if self.f0:
            get_backend(self.f0_backend)  # an unavailable backend fails here, loudly, not per row
        if self.mel:
            self._mel = MelSpectrogram(MelConfig())

    def process_item(self, item: Item) -> None:
        audio = item.data["audio"]
        if self.f0:
            started = time.perf_counter()
            self._f0(item, audio)
            item.record_time("f0", started)
        if self.mel:
            started = time.perf_counter()
            self._log_mel(item, audio)
            item.record_time("mel", started)

    def _f0(self, item: Item, audio: np.ndarray) -> None:
        from hierspeech.f0 import YAAPT_PARAMS, F0ExtractionError, extract_f0, num_frames

        failure = None
        try:
            f0 = extract_f0(audio, f0_max=self.f0_max, backend=self.f0_backend)
            if not np.any(f0 > 0):
                raise F0ExtractionError(f"YAAPT found no voiced frame in {len(audio) / SAMPLE_RATE:.2f} s of audio (silence or noise?)")
        except F0ExtractionError as exc:
            if self.f0_failure == "error":
                raise
            failure = str(exc)
            f0 = np.zeros(num_frames(len(audio)), dtype=np.float32)
        item.members["f0.npy"] = npy_bytes(f0)
        params = dict(YAAPT_PARAMS)
        if self.f0_max is not None:
            params["f0_max"] = float(self.f0_max)
        item.meta["f0"] = {
            "shape": list(f0.shape),
            "dtype": "float32",
            "unit": "Hz, 0 = unvoiced",
            "frame_rate": 200,
            "backend": self.f0_backend,
            "yaapt": params,
            "padding": "zeros to the next multiple of 1280 (+1280 when already a multiple), 160 each side",
            "failed": failure is not None,
            "failure": failure,
        }
        item.index.update({"f0_frames": int(f0.shape[0]), "f0_voiced_frames": int(np.count_nonzero(f0 > 0)), "f0_failed": failure is not None})

    def _log_mel(self, item: Item, audio: np.ndarray) -> None:
        import torch

        with torch.inference_mode():
            mel = self._mel(torch.from_numpy(audio)).numpy().astype(np.float32)
        item.members["mel.npy"] = npy_bytes(mel)
        item.meta["mel"] = {"shape": list(mel.shape), "dtype": "float32", "log": "natural, log(mel + 1e-3)", **self._mel.config.to_dict()}
        item.index["mel_frames"] = int(mel.shape[-1])

