"""The compute device and precision of a run: planned on the driver, applied in each actor, recorded in the output.

Driver: `planned_compute` is the device the run means to use, from `--device` and the fitted stage
resources (a stage still asking for a GPU: "cuda"). It is checked against the output's job.json
before any row runs (`check_mixed_devices`): a resume never mixes CPU and GPU outputs unless
`--allow-mixed-devices`. A local run whose own torch cannot see CUDA is told so in the plan
(`driver_device_notes`), or refused at once under `--device cuda`.

Actor: the Ray adapters call `Stage.prepare_device(policy, precision)` before `setup()`, which runs
`actor_compute` here. A stage holding a GPU reservation whose torch cannot see CUDA stops the job
under `--device cuda` (`DeviceUnavailableError`, one line) and runs on CPU under `--device auto`,
flagged as a CPU fallback. On CUDA the precision is set for the whole process: fp32 turns TF32 off
(torch enables it for cuDNN convolutions by default on Ampere and newer, which breaks the stated
CPU/CUDA tolerances), tf32 turns it on, bf16 runs each batch under bfloat16 autocast
(`precision_scope`); a fractional GPU (num_gpus < 1) caps this process's share of the GPU's memory,
so actors packed on one GPU cannot take each other's.

Output: every sample's json gets `compute` (`sample_compute`: what its GPU stages really ran on),
job.json and the summary the run's (`run_compute`, `merge_compute`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import typing
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from pipeline.errors import ClusterError
from pipeline.io.output import OutputConflictError

if TYPE_CHECKING:
    from pipeline.engine.stage import Stage

log = logging.getLogger(__name__)

DevicePolicy = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "tf32", "bf16"]
DEVICE_POLICIES: tuple[str, ...] = typing.get_args(DevicePolicy)
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
MIXED = "mixed"  # job.json: runs of this output computed on different devices (or precisions)


@dataclass(frozen=True)
class DeviceRun:
    """The run's --device policy and --precision, handed to every stage's `prepare_device` in its process."""

    policy: str = "auto"
    precision: str = "fp32"


class DeviceUnavailableError(ClusterError):
    """Ray gave a stage a GPU but the torch in that process cannot see it (--device cuda)."""


class MixedDevicesError(OutputConflictError):
    """A resume would add outputs computed on another device than the output's so far."""


@dataclass(frozen=True)
class Compute:
    """What one stage's process really computes on (decided in the actor by `actor_compute`)."""

    device: str  # "cpu" or "cuda"
    gpu: str | None = None  # torch.cuda.get_device_name() of the device used
    precision: str = "fp32"  # what ran: always fp32 on CPU
    fallback: bool = False  # held a GPU reservation but ran on CPU (--device auto, torch without CUDA)

    def record(self) -> dict[str, Any]:
        return asdict(self)


def torch_cuda_facts() -> str:
    """What this process's torch says about CUDA, for error lines: its version, CUDA build, availability."""
    import torch

    return (f"torch {torch.__version__}: torch.version.cuda={torch.version.cuda}, "
            f"torch.cuda.is_available()={torch.cuda.is_available()}")


def actor_compute(stage_name: str, num_gpus: float, policy: str, precision: str) -> Compute:
    """Decide and set up this process's device for a stage holding `num_gpus` (see the module docstring)."""
    if num_gpus <= 0 or policy == "cpu":
        return Compute("cpu")
    import torch

    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if policy == "cuda":
            raise DeviceUnavailableError(
                f"stage '{stage_name}' was given {num_gpus:g} GPU(s) by Ray (CUDA_VISIBLE_DEVICES={visible}) but its torch "
                f"cannot see them ({torch_cuda_facts()}): install a CUDA build of torch matching the driver on the GPU "
                "workers, or run with --device cpu"
            )
        log.warning("[%s] CPU FALLBACK: Ray gave this process %g GPU(s) (CUDA_VISIBLE_DEVICES=%s) but its torch cannot "
                    "see them (%s); running on CPU", stage_name, num_gpus, visible, torch_cuda_facts())
        return Compute("cpu", fallback=True)
    apply_precision(precision)
    if num_gpus < 1:
        torch.cuda.set_per_process_memory_fraction(float(num_gpus))
    return Compute("cuda", gpu=torch.cuda.get_device_name(), precision=precision)


def apply_precision(precision: str) -> None:
    """The process-wide TF32 flags for `precision` (bf16 keeps TF32 off for what autocast leaves in float32)."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def precision_scope(compute: Compute | None) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast for a bf16 CUDA stage; nothing otherwise."""
    if compute is None or compute.device != "cuda" or compute.precision != "bf16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16)


def sample_compute(stamps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A sample's `compute`, from the records its GPU-holding stages stamped ({stage: Compute.record()}).

    No stamp (no stage held a GPU): CPU, fp32. `cpu_fallback` names stages that held a GPU but ran on CPU.
    """
    cuda = [s for s in stamps.values() if s["device"] == "cuda"]
    record: dict[str, Any] = {
        "device": "cuda" if cuda else "cpu",
        "gpu": ", ".join(sorted({s["gpu"] for s in cuda if s.get("gpu")})) or None,
        "precision": "/".join(sorted({s["precision"] for s in cuda})) if cuda else "fp32",
    }
    fallback = sorted(name for name, s in stamps.items() if s.get("fallback"))
    if fallback:
        record["cpu_fallback"] = fallback
    return record


def planned_compute(stages: Iterable[Stage], policy: str, precision: str, local: bool = False) -> dict[str, Any]:
    """The run's intended compute (job.json's shape), from the policy and the fitted stage resources.

    `local`: the actors share this machine's torch, so when it cannot see CUDA the GPU stages will run
    on CPU (the CPU FALLBACK of `driver_device_notes`) and the run means CPU: a resume of such an
    output is then not taken for a switch to the GPU.
    """
    gpu = policy != "cpu" and any(stage.resources.num_gpus > 0 for stage in stages)
    if gpu and local:
        import torch

        gpu = torch.cuda.is_available()
    return {"device": "cuda" if gpu else "cpu", "gpus": [], "precision": precision if gpu else "fp32"}


def run_compute(samples: Iterable[dict[str, Any]], planned: dict[str, Any]) -> dict[str, Any]:
    """This run's compute (job.json's shape) from the distinct `sample_compute` records its parts
    committed; `planned` when it committed none."""
    records = list(samples)
    if not records:
        return dict(planned)
    devices = {r["device"] for r in records}
    precisions = {r["precision"] for r in records if r["device"] == "cuda"} or {"fp32"}
    result: dict[str, Any] = {
        "device": devices.pop() if len(devices) == 1 else MIXED,
        "gpus": sorted({name for r in records if r.get("gpu") for name in r["gpu"].split(", ")}),
        "precision": precisions.pop() if len(precisions) == 1 else MIXED,
    }
    fallback = sorted({name for r in records for name in r.get("cpu_fallback", ())})
    if fallback:
        result["cpu_fallback"] = fallback
    return result


def merge_compute(previous: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any]:
    """job.json's compute after a run: `current` added to what earlier runs recorded ("mixed" where they differ)."""
    if not previous:
        return dict(current)
    merged: dict[str, Any] = {
        key: previous.get(key) if previous.get(key) == current[key] else MIXED for key in ("device", "precision")
    }
    merged["gpus"] = sorted(set(previous.get("gpus", [])) | set(current.get("gpus", [])))
    fallback = sorted(set(previous.get("cpu_fallback", [])) | set(current.get("cpu_fallback", [])))
    if fallback:
        merged["cpu_fallback"] = fallback
    return merged


def check_mixed_devices(root: str, previous: dict[str, Any] | None, planned: dict[str, Any], allow_mixed: bool) -> None:
    """Refuse a run that would add `planned`-device outputs to an output computed on another device so far.

    Outputs without a compute record (older versions) and outputs already mixed are not refused.
    """
    if allow_mixed or not previous or previous.get("device") in (planned["device"], MIXED):
        return
    raise MixedDevicesError(
        f"{root} holds output computed on {previous['device']} and this run would compute on {planned['device']}; "
        f"mixing CPU and GPU outputs in one dataset is refused: resume on {previous['device']} "
        f"(--device {previous['device']}), write to a new output directory, or pass --allow-mixed-devices to mix them"
    )


def driver_device_notes(stages: Iterable[Stage], policy: str, precision: str, local: bool) -> list[str]:
    """Plan notes about the device (and refusal of a local --device cuda run whose torch cannot see CUDA).

    On a local run the actors share this machine and its torch, so what this torch sees is what they
    will see; on a cluster the GPU workers decide for themselves (`actor_compute`).
    """
    gpu_stages = [stage.name for stage in stages if stage.resources.num_gpus > 0] if policy != "cpu" else []
    notes: list[str] = []
    if gpu_stages and local:
        import torch

        if not torch.cuda.is_available():
            if policy == "cuda":
                raise DeviceUnavailableError(
                    f"Ray reports GPU(s) for stage(s) {', '.join(gpu_stages)} but this machine's torch cannot see them "
                    f"({torch_cuda_facts()}): install a CUDA build of torch, or run with --device cpu"
                )
            notes.append(f"CPU FALLBACK: this machine's torch cannot see the GPU(s) Ray reports ({torch_cuda_facts()}): "
                         f"stage(s) {', '.join(gpu_stages)} will run on CPU (install a CUDA build of torch to use the GPU)")
            gpu_stages = []
    if precision != "fp32":
        if gpu_stages:
            how = "bfloat16 autocast" if precision == "bf16" else "TF32 matmuls and convolutions"
            notes.append(f"--precision {precision}: {how} in the GPU stage(s) {', '.join(gpu_stages)}")
        else:
            notes.append(f"--precision {precision} applies to CUDA only: this run computes on CPU, in fp32")
    return notes

