"""`ray job submit` against a real head node (dashboard job server on loopback): the upscale pipeline
runs as a Ray job, as README tells cluster users to run it (the training jobs' runs: test_train_ray.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from media import free_port, plain_pyav_mp4

from satecco.video.read import read_frames

pytestmark = pytest.mark.timeout(900)
ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def head():
    """A head node started by `ray start --head --block` in its own process group, stopped with it."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    dashboard = free_port()
    temp = tempfile.mkdtemp(prefix="rayjob", dir="/tmp")  # short: Ray's socket paths live under it
    process = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(free_port()),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
         "--num-cpus", "3", "--temp-dir", temp, "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    address = f"http://127.0.0.1:{dashboard}"
    # `ray job list` answers once the dashboard's job server is up; a submission needs the head's job agent
    # too, which registers later (on a loaded two-core machine, minutes later). Ready = a no-op job accepted.
    deadline = time.time() + 360
    while not _accepts_a_job(address, env):
        if time.time() > deadline or process.poll() is not None:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("the Ray head node did not accept a job within 6 minutes\n" + _log_tails(temp))
        time.sleep(3)
    yield address, env
    os.killpg(process.pid, signal.SIGTERM)
    time.sleep(5)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=60)


def _accepts_a_job(address: str, env: dict) -> bool:
    """Whether the head's job server and job agent take a submission (the head waits up to 10 s for its
    agent per request, then answers "No available agent to submit job")."""
    try:
        done = subprocess.run([RAY, "job", "submit", "--no-wait", "--address", address, "--", "true"],
                              capture_output=True, env=env, timeout=120)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _log_tails(temp: str, lines: int = 15) -> str:
    """The last lines of the head's job server and job agent logs, for a head that never became ready."""
    logs = Path(temp, "session_latest", "logs")
    tails = []
    for name in ("dashboard_JobHead.log", "dashboard_agent.log", "raylet.out"):
        text = (logs / name).read_text(errors="replace").splitlines()[-lines:] if (logs / name).exists() else []
        tails.append(f"--- {name}\n" + "\n".join(text))
    return "\n".join(tails)


def _submit(head, *entrypoint: str) -> subprocess.CompletedProcess:
    """``ray job submit`` and wait for the job."""
    address, env = head
    return subprocess.run([RAY, "job", "submit", "--address", address, "--", *entrypoint], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600)


def test_upscale_runs_as_a_ray_job(head, tmp_path):
    """`satecco upscale` as a Ray job on a head started with `ray start`. (The training entry points join a
    cluster the same way, through init_ray; their runs are tests/test_train_ray.py's: a second Ray Train
    run here would cost the suite 45 s.)"""
    clip = plain_pyav_mp4(tmp_path / "clip.mp4", n=8, height=32, width=48)
    done = _submit(head, sys.executable, "-m", "satecco.cli", "upscale", str(clip), "-o", str(tmp_path / "out"),
                   "--address", "auto", "--codec", "ffv1", "--steps", "1", "--no-progress")
    assert done.returncode == 0 and "succeeded" in done.stdout + done.stderr, done.stdout[-3000:]
    # Ray Data's execution plans and 10-second progress reports stay in its log file, off the console
    assert "Starting execution of Dataset" not in done.stdout and "logging_progress" not in done.stdout
    # no error-level line in a run that succeeds: Ray's false alarm about restartable actors (ray#53727) is dropped
    assert not re.search(r"^\[[^]]* E \d+ \d+\]", done.stdout + done.stderr, re.MULTILINE), done.stdout[-3000:]
    frames = np.stack(list(read_frames(tmp_path / "out" / "clip.mkv")))
    assert frames.shape == (8, 128, 192, 3)
