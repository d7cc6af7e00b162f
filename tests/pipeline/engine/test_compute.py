"""The run's compute device and precision: decided in the actor, stamped on rows, added up and checked on resume.

CUDA is faked by monkeypatching `torch.cuda` (no GPU here); tests/gpu/test_cuda_device.py runs the same on a device.
"""

from __future__ import annotations

import contextlib
import json

import pytest
import torch

from pipeline.engine import compute
from pipeline.engine.compute import (
    DeviceUnavailableError,
    MixedDevicesError,
    check_mixed_devices,
    driver_device_notes,
    merge_compute,
    planned_compute,
    run_compute,
    sample_compute,
)
from pipeline.engine.item import Item
from pipeline.engine.sink import SinkConfig, sample_json
from pipeline.engine.stage import Resources, Stage
from pipeline.errors import PipelineError


class ModelStage(Stage):
    """Records, per batch, whether it ran under autocast and with which dtype."""

    name = "model"
    stateful = True

    def __init__(self, resources: Resources | None = None):
        super().__init__(resources)
        self.seen: list[object] = []

    def process(self, items: list[Item]) -> None:
        self.seen.append(autocast_state[-1] if autocast_state else None)
        for item in items:
            item.meta["done"] = True


autocast_state: list[object] = []


@pytest.fixture()
def tf32_flags():
    """Restore torch's TF32 flags after a test that lets prepare_device set them."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture()
def fake_cuda(monkeypatch, tf32_flags):
    """torch.cuda that sees one "Fake GPU": memory-fraction calls and autocast entries are recorded."""
    calls: dict[str, list] = {"fraction": [], "autocast": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda fraction, device=None: calls["fraction"].append(fraction))

    @contextlib.contextmanager
    def autocast(device_type, dtype=None, **kwargs):
        calls["autocast"].append((device_type, dtype))
        autocast_state.append((device_type, dtype))
        try:
            yield
        finally:
            autocast_state.pop()

    monkeypatch.setattr(torch, "autocast", autocast)
    return calls


def test_a_gpu_torch_cannot_see_stops_the_job_under_cuda_and_falls_back_under_auto(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    stage = ModelStage(Resources(num_gpus=1.0))
    with pytest.raises(DeviceUnavailableError) as info:
        stage.prepare_device("cuda", "fp32")
    message = str(info.value)
    assert isinstance(info.value, PipelineError) and "\n" not in message
    assert "stage 'model'" in message and "CUDA_VISIBLE_DEVICES=3" in message
    assert f"torch.version.cuda={torch.version.cuda}" in message and "torch.cuda.is_available()=False" in message
    assert "install a CUDA build of torch" in message and "--device cpu" in message

    fallback = ModelStage(Resources(num_gpus=1.0)).prepare_device("auto", "bf16")
    assert fallback == compute.Compute("cpu", fallback=True)  # fp32 on CPU whatever was asked


def test_a_cpu_stage_is_cpu_fp32_whatever_the_run_asks(fake_cuda) -> None:
    stage = ModelStage(Resources(num_gpus=0.0))
    assert stage.prepare_device("cuda", "bf16") == compute.Compute("cpu")
    assert stage.device == "cpu" and fake_cuda["fraction"] == []
    gpu = ModelStage(Resources(num_gpus=1.0))
    assert gpu.prepare_device("cpu", "bf16").device == "cpu"  # --device cpu never touches CUDA


@pytest.mark.parametrize(("precision", "tf32"), [("fp32", False), ("tf32", True), ("bf16", False)])
def test_precision_sets_the_tf32_flags_of_the_process(fake_cuda, precision, tf32) -> None:
    torch.backends.cuda.matmul.allow_tf32 = not tf32
    torch.backends.cudnn.allow_tf32 = not tf32  # torch's default on Ampere+ is True: fp32 must turn it off
    stage = ModelStage(Resources(num_gpus=1.0))
    assert stage.prepare_device("auto", precision) == compute.Compute("cuda", gpu="Fake GPU", precision=precision)
    assert stage.device == "cuda"
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (tf32, tf32)


def test_a_fractional_gpu_caps_the_process_memory(fake_cuda) -> None:
    ModelStage(Resources(num_gpus=0.25)).prepare_device("auto", "fp32")
    ModelStage(Resources(num_gpus=1.0)).prepare_device("auto", "fp32")
    assert fake_cuda["fraction"] == [0.25]  # a whole GPU is the process's own


def test_bf16_runs_every_batch_under_autocast_and_the_rows_carry_the_compute(fake_cuda) -> None:
    stage = ModelStage(Resources(num_gpus=0.5))
    stage.prepare_device("auto", "bf16")
    items = [Item("a", 0, {}), Item("b", 1, {})]
    stage(items)
    assert stage.seen == [("cuda", torch.bfloat16)]
    record = {"device": "cuda", "gpu": "Fake GPU", "precision": "bf16", "fallback": False}
    assert [item.compute for item in items] == [{"model": record}] * 2

    fp32 = ModelStage(Resources(num_gpus=0.5))
    fp32.prepare_device("auto", "fp32")
    fp32([Item("c", 2, {})])
    assert fp32.seen == [None]  # no autocast outside bf16


def test_cpu_stages_stamp_nothing_and_an_unprepared_stage_keeps_the_old_device_rule() -> None:
    cpu = ModelStage(Resources(num_gpus=0.0))
    cpu.prepare_device("auto", "fp32")
    item = Item("a", 0, {})
    cpu([item])
    assert item.compute == {}
    assert ModelStage(Resources(num_gpus=1.0)).device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_the_sample_json_says_what_its_gpu_stages_ran_on() -> None:
    config = SinkConfig(out="/nowhere", run_id="r", job="j", index_schema=None, max_shard_bytes=1, package_version="0")
    plain = json.loads(sample_json(Item("a", 0, {}), "a", config))
    assert plain["compute"] == {"device": "cpu", "gpu": None, "precision": "fp32"}
    item = Item("b", 1, {}, meta={"compute": "a stage's own value loses"})
    item.compute = {"w2v": compute.Compute("cuda", "H200", "bf16").record(), "f0": compute.Compute("cpu", fallback=True).record()}
    assert json.loads(sample_json(item, "b", config))["compute"] == {
        "device": "cuda", "gpu": "H200", "precision": "bf16", "cpu_fallback": ["f0"]}


def test_the_run_compute_adds_up_the_parts_and_job_json_marks_mixed_runs() -> None:
    planned = {"device": "cuda", "gpus": [], "precision": "fp32"}
    assert run_compute([], planned) == planned
    cuda = sample_compute({"w2v": compute.Compute("cuda", "A100", "fp32").record()})
    other = sample_compute({"w2v": compute.Compute("cuda", "H200", "fp32").record()})
    assert run_compute([cuda, other], planned) == {"device": "cuda", "gpus": ["A100", "H200"], "precision": "fp32"}
    fell_back = sample_compute({"w2v": compute.Compute("cpu", fallback=True).record()})
    assert run_compute([fell_back], planned) == {"device": "cpu", "gpus": [], "precision": "fp32", "cpu_fallback": ["w2v"]}
    assert run_compute([cuda, fell_back], planned)["device"] == "mixed"

    first = {"device": "cpu", "gpus": [], "precision": "fp32"}
    assert merge_compute(None, first) == first
    assert merge_compute(first, {"device": "cuda", "gpus": ["H200"], "precision": "bf16"}) == {
        "device": "mixed", "gpus": ["H200"], "precision": "mixed"}


def test_planned_compute_follows_the_policy_and_the_fitted_stages() -> None:
    gpu, cpu = ModelStage(Resources(num_gpus=0.5)), ModelStage(Resources(num_gpus=0.0))
    assert planned_compute([cpu, gpu], "auto", "bf16") == {"device": "cuda", "gpus": [], "precision": "bf16"}
    assert planned_compute([cpu, gpu], "cpu", "bf16") == {"device": "cpu", "gpus": [], "precision": "fp32"}
    assert planned_compute([cpu], "cuda", "tf32")["device"] == "cpu"


def test_a_local_cpu_fallback_plans_cpu_so_its_resume_is_not_refused(monkeypatch) -> None:
    """Fake Ray GPUs with a torch that cannot see them: the first run fell back to CPU (job.json says cpu);
    the resume plans the same fallback, so it must not be refused as a switch to the GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    stages = [ModelStage(Resources(num_gpus=0.5))]
    planned = planned_compute(stages, "auto", "fp32", local=True)
    assert planned == {"device": "cpu", "gpus": [], "precision": "fp32"}
    first_run = {"device": "cpu", "gpus": [], "precision": "fp32", "cpu_fallback": ["model"]}
    check_mixed_devices("/data/out", first_run, planned, allow_mixed=False)
    assert planned_compute(stages, "auto", "fp32", local=False)["device"] == "cuda"  # cluster workers decide


def test_a_resume_mixing_cpu_and_gpu_outputs_is_refused_unless_allowed() -> None:
    gpu, cpu = {"device": "cuda", "gpus": ["H200"], "precision": "fp32"}, {"device": "cpu", "gpus": [], "precision": "fp32"}
    with pytest.raises(MixedDevicesError) as info:
        check_mixed_devices("/data/out", gpu, cpu, allow_mixed=False)
    message = str(info.value)
    assert "\n" not in message and "/data/out holds output computed on cuda and this run would compute on cpu" in message
    assert "--allow-mixed-devices" in message
    check_mixed_devices("/data/out", gpu, cpu, allow_mixed=True)
    check_mixed_devices("/data/out", gpu, gpu, allow_mixed=False)
    check_mixed_devices("/data/out", None, cpu, allow_mixed=False)  # written before compute was recorded
    check_mixed_devices("/data/out", {**gpu, "device": "mixed"}, cpu, allow_mixed=False)  # mixed already


def test_the_driver_plan_says_cpu_fallback_or_refuses_a_local_cuda_run(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    stages = [ModelStage(Resources(num_gpus=1.0))]
    notes = driver_device_notes(stages, "auto", "fp32", local=True)
    assert len(notes) == 1 and notes[0].startswith("CPU FALLBACK: ") and "stage(s) model will run on CPU" in notes[0]
    with pytest.raises(DeviceUnavailableError, match=r"this machine's torch cannot see them .*--device cpu"):
        driver_device_notes(stages, "cuda", "fp32", local=True)
    assert driver_device_notes(stages, "cuda", "fp32", local=False) == []  # a cluster's GPU workers decide
    assert driver_device_notes(stages, "auto", "bf16", local=True)[-1] == "--precision bf16 applies to CUDA only: this run computes on CPU, in fp32"
    assert driver_device_notes(stages, "auto", "bf16", local=False) == ["--precision bf16: bfloat16 autocast in the GPU stage(s) model"]
    assert driver_device_notes([ModelStage(Resources(num_gpus=0.0))], "auto", "fp32", local=True) == []
