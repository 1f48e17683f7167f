"""Shared fixtures: the tiny preset built once, one local Ray instance shared by the Ray tests.

`make test` runs the tests in one process, one after another: beside a second pytest process (and its
Ray instance) on two cores, every Ray test ran 2-5x slower, the whole suite was no faster, and Ray's
fixed 30 s start-up limit was exceeded (CI). The shared instance is started with ``address="local"``
and never joins another.
"""

from __future__ import annotations

import copy
import os

import pytest

# Idle OpenMP threads sleep instead of spinning. The tests' process, its Ray workers and subprocesses
# share two cores, and torch's spinning threads then hold a core each while the thread they wait for is
# not running: a 6 s test took 168 s in a suite of two processes, and 54 s against 18 s beside four busy
# loops. Set before torch is imported, and inherited by the Ray instances and subprocesses the tests start.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
from media import free_port  # noqa: E402

# Ray reads its authentication mode when first imported: every Ray instance the tests start keeps
# token authentication on, as the engine's own local instance does.
os.environ.setdefault("RAY_AUTH_MODE", "token")
# The S3 tests' moto server (tests/test_storage.py) listens here. Set before the shared Ray instance
# starts, so that its workers, which inherit the environment Ray started with, reach it too.
os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
                  AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")

torch.set_num_threads(2)

#: Test modules that start Ray clusters of their own in this process: they run last, after the shared
#: instance is shut down (a process joins one Ray instance at a time).
OWN_RAY_MODULES = ("test_ray_cluster.py",)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name in OWN_RAY_MODULES)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def ray_local():
    """The local Ray instance every Ray test in this process shares, started once on first use.

    Four logical CPUs on two cores, so that every stage of a pipeline (and two training workers beside
    their data tasks) gets a slot.
    """
    import time

    import psutil

    from satecco.cluster import init_ray

    for attempt in (1, 2):
        started = time.time()
        try:
            init_ray(None, num_cpus=4)
            break
        except Exception as error:  # Ray raises a bare Exception here
            if attempt == 2 or "timed out during startup" not in str(error):
                raise
            # Ray gives a new node a fixed 30 s to register (ray/_private/node.py), which two pytest
            # processes starting Ray beside CPU-bound tests on two cores have exceeded (CI, once). The
            # failed start's processes are this process's children since `started`: stop them, start again.
            for child in psutil.Process().children(recursive=True):
                if child.create_time() >= started:
                    child.kill()
    yield
    import ray

    ray.shutdown()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """One real `mlflow server` on loopback for every test that logs to a served MLflow."""
    import signal
    import subprocess
    import sys
    import time

    tmp_path = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    deadline = time.time() + 300  # a busy 2-core machine starts it in ~10-60 s
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("mlflow server did not start")
            time.sleep(0.5)
    yield url
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.fixture(scope="session")
def tiny_parts():
    """(model, diffusion config) of the tiny preset with seeded random weights, built once."""
    from satecco.build import build_model
    from satecco.presets import TINY

    return build_model(TINY, seed=0)


@pytest.fixture
def tiny(tiny_parts):
    """A private copy of the tiny model (tests may perturb it)."""
    model, _ = tiny_parts
    return copy.deepcopy(model)


def perturb_(module: torch.nn.Module, std: float = 0.05, seed: int = 1) -> torch.nn.Module:
    """Add seeded Gaussian noise to every parameter (turns zero-initialised modules into active ones)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * std)
    return module


def ray_workers(fragment: str) -> list:
    """The worker processes of this process's Ray instance whose command line holds ``fragment`` (Ray
    titles them after their actor, e.g. ``ray::RayTrainWorker``); other Ray instances' are left out."""
    import psutil
    from ray._private import ray_constants
    from ray._private.worker import _global_node

    raylet = _global_node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    workers = []
    for process in psutil.Process(raylet).children():
        try:
            command = " ".join(process.cmdline())
        except psutil.Error:  # exited (or a zombie not yet reaped) since children() listed it
            continue
        if fragment in command:
            workers.append(process)
    return workers
