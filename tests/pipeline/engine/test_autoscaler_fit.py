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


def test_an_actor_given_several_gpus_becomes_that_many_one_gpu_actors(cluster):
    cluster["now"] = {"CPU": 16.0, "GPU": 4.0}
    stage = PlacementProbeStage(Resources(num_cpus=2, num_gpus=2, actors=1))
    notes = fit_stage_resources([stage], device="auto")
    assert (stage.resources.num_gpus, stage.resources.actors, stage.resources.num_cpus) == (1.0, 2, 2)
    assert notes == ["stage 'placement_probe': a model stage runs on one GPU, so 1 actor(s) x 2 GPUs run as 2 actors x 1 GPU (each with num_cpus=2)"]
    wide = PlacementProbeStage(Resources(num_gpus=4, actors=2))  # 8 one-GPU actors, fitted to the 4 GPUs
    fit_stage_resources([wide], device="cuda")
    assert (wide.resources.num_gpus, wide.resources.actors) == (1.0, 4)


def test_several_gpus_per_task_run_as_one_and_a_fraction_above_one_is_refused(cluster):
    from pipeline.engine.stage import Stage

    cluster["now"] = {"CPU": 16.0, "GPU": 4.0}
    task = Stage(Resources(num_gpus=2))
    assert "a task uses one GPU" in fit_stage_resources([task])[0] and task.resources.num_gpus == 1.0
    with pytest.raises(ResourceError, match=r"asks for 1\.5 GPUs per actor: give a fraction <= 1"):
        fit_stage_resources([PlacementProbeStage(Resources(num_gpus=1.5))])
    shared = Resources(num_gpus=2)
    first, second = PlacementProbeStage(shared), PlacementProbeStage(shared)
    fit_stage_resources([first, second])
    assert first.resources.actors == second.resources.actors == 2  # a shared Resources object is split once per stage


def test_the_gpu_request_is_withdrawn_when_the_job_ends(cluster, monkeypatch, tmp_path):
    import ray.autoscaler.sdk

    from pipeline.engine import runner
    from pipeline.io.output import OutputDir

    requests = []
    monkeypatch.setattr(ray.autoscaler.sdk, "request_resources", lambda num_cpus=None, bundles=None: requests.append((num_cpus, bundles)))
    monkeypatch.setattr(ray_env, "init_ray", lambda address, num_cpus: False)  # no Ray: the body is all there is
    stages = [PlacementProbeStage(Resources(num_gpus=1.0))]
    out = OutputDir(str(tmp_path))

    def body():
        ray_env.wait_for_gpus(stages, seconds=0.05, poll=0.01)
        raise ValueError("the job failed")

    with pytest.raises(runner.JobFailedError, match="the job failed"):
        runner.run_on_ray("probe", out, runner.RunOptions(), body)
    assert requests == [(None, [{"GPU": 1.0}]), (0, [])]  # asked, then withdrawn although the job failed

    requests.clear()
    assert runner.run_on_ray("probe", out, runner.RunOptions(), lambda: ray_env.wait_for_gpus(stages, seconds=0.05, poll=0.01))
    assert requests == [(None, [{"GPU": 1.0}]), (0, [])]
    requests.clear()
    runner.run_on_ray("probe", out, runner.RunOptions(), lambda: None)
    assert requests == []  # nothing asked, nothing withdrawn
