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
    from pipeline.engine.ray_env import init_ray
    from pipeline.engine.job import Job, RunOptions
    from pipeline.engine.runner import run_job
    from pipeline.engine.stage import Resources
    from pipeline.testing.probes import PlacementProbeStage
    import ray
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    out, manifest = sys.argv[1], sys.argv[2]
    pq.write_table(pa.table({"id": ["a", "b", "c"], "audio": ["x", "y", "z"]}), manifest)
    job = Job("probe", lambda: [PlacementProbeStage(Resources(num_cpus=0.5, num_gpus=0.5, actors=4))])
    summary = run_job(job, manifest, out, RunOptions(progress=False, device="cuda"))
    print("SUMMARY", json.dumps(summary["complete"]))
    """
)


def test_gpu_stage_gets_a_fake_gpu(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    out, manifest = tmp_path / "out", tmp_path / "m.parquet"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(out), str(manifest)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SUMMARY true" in done.stdout
    # every actor (4 x 0.5 GPU on 2 fake GPUs) was given a GPU id by Ray, and Ray set CUDA_VISIBLE_DEVICES
    import glob
    import io
    import tarfile

    placements = []
    for shard in glob.glob(f"{out}/shards/*.tar"):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    placements.append(json.load(io.TextIOWrapper(tar.extractfile(member)))["placement"])
    assert len(placements) == 3
    for placement in placements:
        assert placement["gpu_ids"], placement
        assert placement["cuda_visible_devices"] == ",".join(placement["gpu_ids"])
