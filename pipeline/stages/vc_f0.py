"""Synthesis F0 of VC rows: YAAPT on source and prompt, the source's contour moved to the prompt's range."""

from __future__ import annotations

import time

from hierspeech.f0 import DEFAULT_BACKEND as DEFAULT_F0_BACKEND
from hierspeech.f0 import VC_F0_MAX
from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage


class VcF0Stage(Stage):
    """F0 of VC rows: YAAPT (f0_max `VC_F0_MAX`, 1100 Hz) on source and prompt, source standardised to the prompt's range."""

    name = "vc_f0"
    stateful = True
    batch_size = 1
    inputs = ("mode",)
    optional_inputs = ("source", "prompt")  # VC rows only
    outputs = ("log_f0",)

    def required_inputs(self, item: Item) -> tuple[str, ...]:
        return (*self.inputs, *self.optional_inputs) if item.data.get("mode") == "vc" else self.inputs
    input_rows_per_block = 1

    def __init__(self, *, backend: str = DEFAULT_F0_BACKEND, resources: Resources | None = None):
        super().__init__(resources)
        self.backend = backend

    def setup(self) -> None:
        from hierspeech.f0 import get_backend

        get_backend(self.backend)

    def process_item(self, item: Item) -> None:
        if item.data["mode"] != "vc":
            return
        from hierspeech.f0 import vc_log_f0

        started = time.perf_counter()
        item.data["log_f0"] = vc_log_f0(item.data["source"], item.data["prompt"], backend=self.backend)
        item.meta["f0"] = {"backend": self.backend, "f0_max": VC_F0_MAX, "normalised_to": "prompt voiced mean/std", "seconds": time.perf_counter() - started}

