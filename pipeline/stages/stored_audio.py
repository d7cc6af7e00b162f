"""Extract's stored audio: the FLAC member, and the samples every feature is computed from.

Every feature is computed from the samples exactly as stored in the sample's FLAC (16-bit), i.e.
what upstream's data loader reads back from its wav files.
"""

from __future__ import annotations

import io
import time

import numpy as np
import soundfile as sf

from hierspeech.defaults import SAMPLE_RATE
from pipeline.engine.item import Item
from pipeline.stages.encode import EncodeFlacStage


class StoredAudioStage(EncodeFlacStage):
    """FLAC-encode `data['audio']` and replace it by the decoded FLAC samples.

    The features are then computed on exactly the stored samples (16-bit grid), so they match
    what any reader of the shard, or of upstream's exported wav files, gets.
    """

    name = "stored_audio"
    outputs = ("audio",)  # replaced by the samples as stored

    def process_item(self, item: Item) -> None:
        started = time.perf_counter()
        super().process_item(item)
        stored, rate = sf.read(io.BytesIO(item.members[self.member]), dtype="float32")
        if rate != SAMPLE_RATE:
            raise ValueError(f"extract needs {SAMPLE_RATE} Hz audio, the stored audio is {rate} Hz")
        item.data["audio"] = np.ascontiguousarray(stored)
        item.index.update({"num_samples": int(stored.shape[0]), "denoised": False})
        item.record_time(self.name, started)

