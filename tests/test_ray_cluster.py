"""Multi-node: a head and two worker nodes on this machine (ray.cluster_utils.Cluster), and the
cluster launcher config checked against Ray's own schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from media import plain_pyav_mp4

from satecco.build import build_pipeline
from satecco.engine_local import upscale_locally
from satecco.inputs import VideoSettings
from satecco.pipelines.config import STAGE_PARTS, GroupConfig, PipelineConfig
from satecco.pipelines.upscale import upscale_on_ray
from satecco.presets import ModelSpec
from satecco.video.read import read_frames

ROOT = Path(__file__).parent.parent


def validate_config(config: dict) -> None:
    """Validate against the schema file Ray's cluster launcher uses (ray/autoscaler/ray-schema.json),
    read directly: importing the launcher's own helpers changes how a later ``ray.init`` behaves."""
    import importlib.util
    import json

    import jsonschema

    schema = Path(importlib.util.find_spec("ray").origin).parent / "autoscaler" / "ray-schema.json"
    jsonschema.validate(config, json.loads(schema.read_text()))


def test_cluster_launcher_config_passes_rays_schema():
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    validate_config(config)
    gpu = config["available_node_types"]["gpu_worker"]
    assert gpu["max_workers"] >= 1 and config["head_node_type"] == "head"
    assert any("pip install" in c and "satecco" in c for c in config["setup_commands"])
    broken = {**config, "available_node_types": {**config["available_node_types"], "head": {"resources": {}}}}
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the shared instance (tests/conftest.py runs this module last)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def test_several_videos_on_three_nodes_equal_a_single_node_run(cluster, tmp_path):
    import ray

    assert len([n for n in ray.nodes() if n["Alive"]]) == 3
    clips = [str(plain_pyav_mp4(tmp_path / f"clip{i}.mp4", n=n, height=16, width=16))
             for i, n in enumerate((9, 6, 11))]
    spec, settings = ModelSpec(preset="tiny", steps=1), VideoSettings(codec="ffv1", seed=4)
    config = PipelineConfig(groups=(GroupConfig(tuple(STAGE_PARTS), min_actors=2, max_actors=2),),
                            windows_per_segment=1, decode_cpus=0.25, write_cpus=0.25)
    results = upscale_on_ray(clips, tmp_path / "cluster", spec, settings, config, address=cluster[0].address,
                      progress=False)
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    single = upscale_locally(clips, tmp_path / "single", build_pipeline(spec), settings, progress=False)
    for on_cluster, alone in zip(results, single, strict=True):
        frames = np.stack(list(read_frames(on_cluster.output)))
        expected = np.stack(list(read_frames(alone.output)))
        assert frames.shape == expected.shape
        assert np.abs(frames.astype(int) - expected).max() <= 1
