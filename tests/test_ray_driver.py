"""The Ray engine's driver side without a Ray instance: pipeline configs, what the driver imports, the
join task, and how the local instance is started (in a fresh process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from satecco.pipelines.config import (
    STAGE_PARTS,
    GroupConfig,
    PipelineConfig,
    default_pipeline_config,
    load_pipeline_config,
)


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("configs/pipeline/*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_pipeline_configs_are_valid(path):
    config = load_pipeline_config(path)
    assert [s for g in config.groups for s in g.stages] == ["upscale", "encode", "denoise", "decode", "refine"]


def test_default_pipeline_config_follows_the_cluster():
    """Without a pipeline YAML: one fused actor per GPU where there are GPUs, else two CPU actors that
    may each use every core."""
    (gpu,) = default_pipeline_config({"CPU": 64.0, "GPU": 8.0}).groups
    assert (gpu.stages, gpu.num_gpus, gpu.min_actors, gpu.max_actors) == (tuple(STAGE_PARTS), 1, 1, 8)
    (cpu,) = default_pipeline_config({"CPU": 3.0}).groups
    assert (cpu.num_gpus, cpu.max_actors, cpu.num_cpus, cpu.threads) == (0, 2, 1, "all")
    # Segments are planned before the cluster is seen, with the class default.
    assert {default_pipeline_config(r).windows_per_segment for r in ({"GPU": 1.0}, {})} == \
        {PipelineConfig().windows_per_segment}


def test_driver_imports_neither_torch_nor_diffusers():
    """The Ray engine's driver only plans and joins: `satecco upscale` must not spend seconds importing
    the model libraries before it starts Ray (the stage actors import them)."""
    code = ("import sys, satecco.cli, satecco.pipelines.upscale\n"
            "satecco.cli.build_parser()\n"
            "print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


JOIN = """
import sys
from fractions import Fraction
from pathlib import Path
import numpy as np
from satecco.pipelines.stages import join_video
from satecco.segments import JoinPlan, save_share, seam_path
from satecco.video.read import read_frames
from satecco.video.picture import Encoding
from satecco.video.write import VideoWriter

folder = Path(sys.argv[1])
parts = [str(folder / "part-000000.mkv"), str(folder / "part-000001.mkv")]
for part, value in zip(parts, (10, 200)):
    with VideoWriter(part, 8, 8, Fraction(25), codec="ffv1") as writer:
        for _ in range(3):
            writer.write(np.full((8, 8, 3), value, np.uint8))
ones = np.ones((2, 8, 8, 3), np.float32)
save_share(seam_path(parts[0], "tail"), 10 * ones * [[[[1.0]]], [[[2.0]]]], np.array([1.0, 2.0]))
save_share(seam_path(parts[1], "head"), 200 * ones * [[[[3.0]]], [[[2.0]]]], np.array([3.0, 2.0]))
target = folder.parent / "out.mkv"
source = folder.parent / "in.mkv"  # the source the parts were made from: it gives the timing
with VideoWriter(source, 2, 2, Fraction(25), codec="ffv1") as writer:
    for _ in range(8):
        writer.write(np.zeros((2, 2, 3), np.uint8))
plan = JoinPlan(str(source), str(target), tuple(parts), (2,), Fraction(25), Encoding("ffv1"))
assert join_video(plan) is None
print([int(f[0, 0, 0]) for f in read_frames(target)], folder.exists(), "torch" in sys.modules)
"""


def test_join_blends_shared_frames_between_parts_without_torch(tmp_path):
    """The join task: parts in order with the shared frames blended from both shares between them
    (10*1 + 200*3) / 4 = 152.5 -> 152 (half to even), (10*2 + 200*2) / 4 = 105; then the parts are
    removed. It runs in plain CPU workers, which must not import torch for it."""
    folder = tmp_path / "parts"
    folder.mkdir()
    out = subprocess.run([sys.executable, "-c", JOIN, str(folder)], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == str([10, 10, 10, 152, 105, 200, 200, 200]) + " False False"


def test_the_gpu_pipeline_config_fits_the_shipped_cluster():
    """Every pool at its largest asks for no more GPUs than ray_cluster.yaml's workers have."""
    import yaml

    root = Path(__file__).parent.parent
    config = load_pipeline_config(root / "configs" / "pipeline" / "gpu.yaml")
    cluster = yaml.safe_load((root / "ray_cluster.yaml").read_text())
    workers = cluster["available_node_types"]["gpu_worker"]
    gpus = workers["resources"].get("GPU", 1)  # g6e.xlarge: one GPU
    demand = sum(group.max_actors * group.num_gpus for group in config.groups)
    assert demand <= workers["max_workers"] * gpus, (demand, workers["max_workers"])


def test_pipeline_configs_refuse_splits_that_would_ship_pixels(tmp_path):
    with pytest.raises(ValueError, match="upscale and encode must share an actor"):
        PipelineConfig(groups=(GroupConfig(("upscale",)), GroupConfig(("encode", "denoise", "decode", "refine"))))
    with pytest.raises(ValueError, match="once each, in order"):
        PipelineConfig(groups=(GroupConfig(("upscale", "encode", "decode", "denoise", "refine")),))
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups:\n  - stages: [upscale, encode, denoise, decode, refine]\n    min_actors: 3\n"
                   "    max_actors: 2\n")
    with pytest.raises(ValueError, match=r"bad.yaml: groups\.0: group .* min_actors <= max_actors"):
        load_pipeline_config(bad)
    for threads in ("0", "lots"):
        bad.write_text(f"groups:\n  - stages: [upscale, encode, denoise, decode, refine]\n    threads: {threads}\n")
        with pytest.raises(ValueError, match=r"bad.yaml: groups\.0: group .* threads must be a positive integer or 'all'"):
            load_pipeline_config(bad)


def test_local_instance_listens_on_loopback_only(tmp_path):
    """In a fresh process (Ray reads its settings on import): every listening socket of the local
    instance's processes, the dashboard's (--dashboard) included, is on 127.0.0.1, token authentication
    is on, and workers run at the driver's priority (Ray's default would nice them to 15). Its workers
    find this instance where Ray's state API looks (Ray Train's placement-group cleaner asks it whether
    the controller lives), not the other instance that RAY_ADDRESS and ray_current_cluster name."""
    script = (
        "import json, psutil\n"
        "from satecco.cluster import init_ray\n"
        "url = init_ray(None, num_cpus=1, dashboard=True)\n"
        "import ray\n"
        "import os\n"
        "nice = ray.get(ray.remote(lambda: os.nice(0)).remote())\n"
        "from ray._private.services import canonicalize_bootstrap_address_or_die as resolve\n"
        "found_by_worker = ray.get(ray.remote(lambda: resolve(None)).remote())\n"
        "me = psutil.Process()\n"
        "pids = {p.pid for p in [me, *me.children(recursive=True)]}\n"
        "found = [c.laddr.ip for c in psutil.net_connections('inet') if c.status == 'LISTEN' and c.pid in pids]\n"
        "from ray._private.authentication.authentication_token_setup import AUTH_MODE_ENV_VAR\n"
        "print(json.dumps({'listen': found, 'auth': os.environ[AUTH_MODE_ENV_VAR], 'nice': [os.nice(0), nice],\n"
        "                  'url': url, 'ports': [c.laddr.port for c in psutil.net_connections('inet')\n"
        "                                    if c.status == 'LISTEN' and c.pid in pids],\n"
        "                  'gcs': ray.get_runtime_context().gcs_address, 'found_by_worker': found_by_worker,\n"
        "                  'driver_env': [os.environ.get('RAY_ADDRESS'), os.environ.get('RAY_GCS_SERVER_PORT')]}))\n"
        "ray.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_AUTH_MODE", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_worker_niceness")}
    # Another instance on the machine (`ray start` records it in its temp folder; RAY_ADDRESS names one):
    # the local instance is still this run's own, not a join that refuses num_cpus.
    temp = tempfile.mkdtemp(prefix="rayown", dir="/tmp")  # short: Ray's socket paths live under it
    Path(temp, "ray_current_cluster").write_text("127.0.0.1:1")
    env.update(RAY_TMPDIR=temp, RAY_ADDRESS="127.0.0.1:1")
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env)
    finally:
        shutil.rmtree(temp, ignore_errors=True)  # the instance's session folder and sockets
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["auth"] == "token"
    assert report["nice"][1] == report["nice"][0], report["nice"]
    assert report["found_by_worker"] == report["gcs"] != "127.0.0.1:1"
    assert report["driver_env"] == ["127.0.0.1:1", None]  # the driver's environment as it was
    assert report["listen"], "no listening socket found"
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip in report["listen"]), report["listen"]
    host, port = report["url"].removeprefix("http://").split(":")
    assert host == "127.0.0.1" and int(port) in report["ports"]  # the dashboard is among the loopback sockets


def test_a_training_instance_tells_ray_trains_cleaner_that_its_controller_lives():
    """Ray Train's placement-group cleaner asks Ray's state API every second whether the run's controller
    lives, and removes the run's placement group when the API knows no such actor. In the local instance
    a training run starts (a fresh process), the state API reaches that instance's own dashboard, on a
    port of its own, and finds a live actor alive, asked the cleaner's way. Without a dashboard it
    reached no server, or another instance's at 127.0.0.1:8265, which killed a live run."""
    script = (
        "import json\n"
        "from satecco.jobs.train import start_ray\n"
        "start_ray(None)\n"
        "import ray\n"
        "from ray.train.v2._internal.state.util import is_actor_alive\n"
        "@ray.remote(num_cpus=0)\n"
        "class Controller:\n"
        "    def actor_id(self):\n"
        "        return ray.get_runtime_context().get_actor_id()\n"
        "controller = Controller.remote()\n"
        "actor_id = ray.get(controller.actor_id.remote())\n"
        "ask = ray.remote(num_cpus=0)(lambda: bool(is_actor_alive(actor_id, timeout=30)))\n"
        "print(json.dumps({'alive': ray.get(ask.remote())}))\n"
        "ray.shutdown()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"alive": True}
    url = next(line for line in done.stderr.splitlines() if line.startswith("Ray dashboard: "))
    assert url.startswith("Ray dashboard: http://127.0.0.1:") and not url.endswith(":8265"), url


def test_outputs_inside_a_ray_jobs_working_copy_are_refused(tmp_path, monkeypatch, capsys):
    """Under `ray job submit --working-dir .` the current folder is a temporary copy deleted with the job:
    relative outputs (and the default MLflow store) would vanish, so they are refused in one line."""
    import json

    from satecco.cli import main
    from satecco.training.config import load_train_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = load_train_config(None, "upscaler", data=("clip.mp4",), storage_path=str(tmp_path.parent / "kept"),
                               tracking_uri=f"sqlite:///{tmp_path.parent / 'kept.db'}")
    config.resolved()  # a plain run: relative and absolute paths alike are fine
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"runtime_env": {"working_dir": "gcs://x.zip"}}))
    config.resolved()  # absolute paths outside the copy are fine in a job too
    with pytest.raises(ValueError, match=r"--tracking-uri sqlite:///.*mlflow.db: under `ray job submit"):
        load_train_config(None, "upscaler", data=("clip.mp4",), storage_path=str(tmp_path.parent)).resolved()
    with pytest.raises(ValueError, match="--storage-path .*: under `ray job submit --working-dir`"):
        load_train_config(None, "upscaler", data=("clip.mp4",), tracking_uri="http://mlflow:5000").resolved()
    assert main(["upscale", "clip.mp4", "-o", "out", "--engine", "local"]) == 2
    assert "--output out: under `ray job submit --working-dir` this is inside the job's temporary copy" in \
        capsys.readouterr().err
