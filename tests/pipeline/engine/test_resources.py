"""GPU stages: fake-GPU placement, CPU fallback, and failing fast instead of hanging."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pipeline.engine.ray_env import ResourceError, fit_stage_resources
from pipeline.engine.stage import Resources
from pipeline.testing.probes import PlacementProbeStage
from tests.conftest import REPO_ROOT


def torch_sees_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_no_gpu_cluster_falls_back_or_fails_fast(ray_local):
    stage = PlacementProbeStage()
    notes = fit_stage_resources([stage], device="auto")
    assert stage.resources.num_gpus == 0 and "running on CPU" in notes[0]
    with pytest.raises(ResourceError, match="has no GPU"):
        fit_stage_resources([PlacementProbeStage()], device="cuda")
    with pytest.raises(ResourceError, match="asks for 64 CPUs"):
        fit_stage_resources([PlacementProbeStage(Resources(num_cpus=64))])


SCRIPT = textwrap.dedent(
    """
    import json, sys
    import pyarrow as pa, pyarrow.parquet as pq
    from pipeline.engine import runner
    from pipeline.engine.job import Job, RunOptions
    from pipeline.engine.stage import Resources
    from pipeline.errors import PipelineError
    from pipeline.testing.probes import PlacementProbeStage
    import ray
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    root, manifest = sys.argv[1], sys.argv[2]
    pq.write_table(pa.table({"id": ["a", "b", "c"], "audio": ["x", "y", "z"]}), manifest)
    job = Job("probe", lambda: [PlacementProbeStage(Resources(num_cpus=0.5, num_gpus=0.5, actors=4))])
    summary = runner.run_job(job, manifest, f"{root}/auto", RunOptions(progress=False, device="auto"))
    print("SUMMARY", json.dumps({"complete": summary["complete"], "compute": summary["compute"]}, sort_keys=True))

    def refused(out):
        try:
            runner.run_job(job, manifest, out, RunOptions(progress=False, device="cuda"))
        except PipelineError as exc:
            return {"error": type(exc).__name__, "message": str(exc)}
        return {"error": None}

    print("DRIVER", json.dumps(refused(f"{root}/cuda-driver")))
    runner.driver_device_notes = lambda *args, **kwargs: []  # as on a cluster: the GPU workers decide
    print("ACTOR", json.dumps(refused(f"{root}/cuda-actor")))
    """
)


def _result(stdout: str, tag: str) -> dict:
    return json.loads(next(line for line in stdout.splitlines() if line.startswith(tag + " "))[len(tag) + 1 :])


@pytest.mark.skipif(torch_sees_cuda(), reason="checks a GPU that torch cannot see: fake GPUs of a CPU-only torch")
def test_gpu_stage_gets_a_fake_gpu_and_a_torch_that_cannot_see_it_falls_back_or_stops(tmp_path):
    """Ray's fake GPUs with a CPU-only torch: --device auto runs on CPU and says so (plan, summary, sample
    json); --device cuda stops with one line, from the driver on a local run and from the actor otherwise."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    root, manifest = tmp_path / "out", tmp_path / "m.parquet"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(root), str(manifest)], env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _result(done.stdout, "SUMMARY") == {
        "complete": True, "compute": {"device": "cpu", "gpus": [], "precision": "fp32", "cpu_fallback": ["placement_probe"]}}
    assert "[probe] CPU FALLBACK: this machine's torch cannot see the GPU(s) Ray reports" in done.stderr
    assert "  CPU FALLBACK stage(s) placement_probe held a GPU but ran on CPU" in done.stderr
    job = json.loads((root / "auto" / "job.json").read_text())
    assert job["compute"] == {"device": "cpu", "gpus": [], "precision": "fp32", "cpu_fallback": ["placement_probe"]}
    # every actor (4 x 0.5 GPU on 2 fake GPUs) was given a GPU id by Ray, and Ray set CUDA_VISIBLE_DEVICES
    import glob
    import io
    import tarfile

    metas = []
    for shard in glob.glob(f"{root}/auto/shards/*.tar"):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    metas.append(json.load(io.TextIOWrapper(tar.extractfile(member))))
    assert len(metas) == 3
    for meta in metas:
        placement = meta["placement"]
        assert placement["gpu_ids"], placement
        assert placement["cuda_visible_devices"] == ",".join(placement["gpu_ids"])
        assert meta["compute"] == {"device": "cpu", "gpu": None, "precision": "fp32", "cpu_fallback": ["placement_probe"]}

    for tag, where in (("DRIVER", "this machine's torch cannot see them"), ("ACTOR", "stage 'placement_probe' was given 0.5 GPU(s) by Ray")):
        result = _result(done.stdout, tag)
        assert result["error"] == "DeviceUnavailableError", (tag, result)
        assert "\n" not in result["message"] and where in result["message"], (tag, result)
        assert "torch.cuda.is_available()=False" in result["message"] and "--device cpu" in result["message"], (tag, result)
