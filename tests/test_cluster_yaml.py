"""cluster.yaml passes the Ray autoscaler's own validation (no cloud is contacted) and has the promised shape."""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.conftest import REPO_ROOT

autoscaler_util = pytest.importorskip("ray.autoscaler._private.util")
jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((REPO_ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_passes_ray_validation(cluster):
    import ray

    prepared = autoscaler_util.prepare_config(copy.deepcopy(cluster))  # merges the provider's defaults
    autoscaler_util.validate_config(prepared)  # Ray's ray-schema.json + min/max worker checks
    assert prepared["provider"]["type"] == "aws"
    assert cluster["docker"]["image"].split(":")[1].startswith(ray.__version__), "cluster image must run the pinned Ray"

    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"].get("CPU", 0) == 0, "head schedules no stage"
    gpu_types = [t for name, t in types.items() if t.get("resources", {}).get("GPU", 0) > 0]
    assert gpu_types, "a GPU worker type"
    for node_type in gpu_types:
        assert node_type["min_workers"] == 0 < node_type["max_workers"] <= cluster["max_workers"]
    setup = " ".join(cluster["setup_commands"])
    assert "espeak-ng" in setup and "pip install" in setup and "~/hierspeech-pipeline" in setup
    assert cluster["file_mounts"]["~/hierspeech-pipeline"] == "."
    assert (REPO_ROOT / cluster["file_mounts"]["~/job-configs"]).is_dir()


def test_validation_rejects_a_broken_config(cluster):
    """The check above can fail: Ray's schema rejects an unknown key and a min_workers sum over max_workers."""
    bad = copy.deepcopy(cluster)
    bad["available_node_types"]["gpu_a10g"]["gpus_per_node"] = 1
    with pytest.raises(jsonschema.ValidationError):
        autoscaler_util.validate_config(autoscaler_util.prepare_config(bad))
    bad = copy.deepcopy(cluster)
    bad["available_node_types"]["gpu_a10g"]["min_workers"] = bad["max_workers"] + 1
    with pytest.raises(ValueError, match="max_workers"):
        autoscaler_util.validate_config(autoscaler_util.prepare_config(bad))
