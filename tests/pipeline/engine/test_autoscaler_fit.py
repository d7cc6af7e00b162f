"""Fitting GPU stages on an autoscaling cluster: GPUs the autoscaler can still add count as available."""

from __future__ import annotations

import pytest

from pipeline.engine import ray_env
from pipeline.engine.ray_env import ResourceError, fit_stage_resources
from pipeline.engine.stage import Resources
from pipeline.testing.probes import PlacementProbeStage


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


def test_wait_for_gpus_asks_the_autoscaler_and_waits(cluster, monkeypatch):
    import ray.autoscaler.sdk

    requests = []
    monkeypatch.setattr(ray.autoscaler.sdk, "request_resources", lambda bundles: requests.append(bundles))
    calls = iter([{"CPU": 4.0}, {"CPU": 4.0}, {"CPU": 8.0, "GPU": 1.0}])
    monkeypatch.setattr(ray_env.ray, "cluster_resources", lambda: next(calls))
    stages = [PlacementProbeStage(Resources(num_gpus=0.5, actors=3))]
    notes = ray_env.wait_for_gpus(stages, seconds=30, poll=0.01)
    assert requests == [[{"GPU": 1.0}, {"GPU": 1.0}]] and "1 GPU(s) up" in notes[0]
    assert ray_env.wait_for_gpus(stages, seconds=0) == []  # off by default
