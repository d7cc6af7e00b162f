"""The run's device settings on a real device: `Stage.prepare_device` picks the GPU, sets the precision
(fp32: TF32 off, tf32: on, bf16: each batch under bfloat16 autocast) and caps a fractional GPU's memory.

Under the CPU rehearsal the stages hold no GPU: they run on CPU in fp32, which is what is asserted there.
"""

from __future__ import annotations

import pytest

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage

pytestmark = pytest.mark.gpu


class MatmulStage(Stage):
    """A batch is one matmul on the stage's device; records the result's dtype and device."""

    name = "matmul"
    stateful = True

    def __init__(self, num_gpus: float):
        super().__init__(Resources(num_gpus=num_gpus))
        self.seen: list[tuple[str, str]] = []

    def process(self, items: list[Item]) -> None:
        import torch

        x = torch.randn(len(items), 64, device=self.device)
        y = x @ torch.randn(64, 64, device=self.device)
        self.seen.append((str(y.dtype), y.device.type))


def gpus(device: str, share: float = 1.0) -> float:
    return share if device == "cuda" else 0.0


@pytest.mark.parametrize(("precision", "tf32", "dtype"), [("fp32", False, "torch.float32"), ("tf32", True, "torch.float32"),
                                                          ("bf16", False, "torch.bfloat16")])
def test_precision_on_the_device(device, precision, tf32, dtype) -> None:
    import torch

    torch.backends.cudnn.allow_tf32 = True  # torch's own default on Ampere and newer: fp32 must turn it off
    stage = MatmulStage(gpus(device))
    compute = stage.prepare_device("cuda" if device == "cuda" else "auto", precision)
    stage([Item("a", 0, {}), Item("b", 1, {})])
    if device == "cuda":
        assert (compute.device, compute.gpu, compute.precision) == ("cuda", torch.cuda.get_device_name(), precision)
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (tf32, tf32)
        assert stage.seen == [(dtype, "cuda")]
    else:
        assert (compute.device, compute.precision) == ("cpu", "fp32")
        assert stage.seen == [("torch.float32", "cpu")]


def test_a_fractional_gpu_cannot_allocate_past_its_share(device) -> None:
    import torch

    stage = MatmulStage(gpus(device, share=0.25))
    stage.prepare_device("auto", "fp32")
    if device != "cuda":
        assert stage.device == "cpu"
        return
    total = torch.cuda.get_device_properties(0).total_memory
    try:
        torch.cuda.empty_cache()
        with pytest.raises(torch.cuda.OutOfMemoryError):
            torch.empty(int(0.4 * total), dtype=torch.uint8, device="cuda")  # more than the 25 % share
        block = torch.empty(int(0.1 * total), dtype=torch.uint8, device="cuda")  # within it
        del block
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
