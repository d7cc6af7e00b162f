"""Fitting GPU stages on an autoscaling cluster: GPUs the autoscaler can still add count as available."""

from __future__ import annotations

import pytest

from pipeline import ray_env
from pipeline.ray_env import ResourceError, fit_stage_resources
from pipeline.stage import Resources
from pipeline.testing import PlacementProbeStage


@pytest.fixture()
def cluster(monkeypatch):
    """A fake cluster: what is up now, and the autoscaler's ceiling ({} = no autoscaler)."""
    state = {"now": {"CPU": 4.0}, "ceiling": {}}
    monkeypatch.setattr(ray_env.ray, "cluster_resources", lambda: state["now"])
    monkeypatch.setattr(ray_env, "autoscaler_max_resources", lambda: state["ceiling"])
    return state


def test_gpu_workers_scaling_from_zero_keep_gpu_stages_on_gpu(cluster):
    cluster["ceiling"] = {"CPU": 36.0, "GPU": 2.0}
    stage = PlacementProbeStage(Resources(num_cpus=1, num_gpus=0.5, actors=8))
    notes = fit_stage_resources([stage], device="cuda")
    assert stage.resources.num_gpus == 0.5 and stage.resources.actors == 4  # 2 GPUs / 0.5
    assert "autoscaler can add up to 2" in notes[0]


def test_without_autoscaler_no_gpu_means_cpu_or_failure(cluster):
    stage = PlacementProbeStage()
    assert "running on CPU" in fit_stage_resources([stage], device="auto")[0] and stage.resources.num_gpus == 0
    with pytest.raises(ResourceError, match="has no GPU"):
        fit_stage_resources([PlacementProbeStage()], device="cuda")
