"""Joining or starting the Ray instance that the upscale pipeline and the training jobs run on.

Ray is imported inside :func:`init_ray`, so importing this module stays light.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

#: Set by Ray's job supervisor for a job's entry point: the job's runtime environment, as JSON.
JOB_CONFIG_VARIABLE = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def init_ray(address: str | None, num_cpus: int | None = None, log_to_driver: bool = False,
             dashboard: bool = False) -> str | None:
    """Join ``address`` (``auto``, ``ray://…``, ``host:port``) or start a local instance on loopback
    with token authentication on.

    Ray reads these settings when it is first imported or started: ``RAY_AUTH_MODE=token``, and
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which (despite its name) makes a Linux node take the
    loopback address, so that every Ray server of the local instance listens on 127.0.0.1 only; and
    ``RAY_worker_niceness=0``, so that the workers run at the driver's priority.
    ``log_to_driver``: show the workers' output here (training progress); the upscale pipeline has its
    own progress bar. ``dashboard``: a local instance also serves Ray's dashboard, on 127.0.0.1 only;
    returns its URL (``None`` without one, or when joining a cluster, whose dashboard is its head's).
    The dashboard takes a free port, not Ray's 8265: Ray's state API in any instance without a dashboard
    of its own asks 127.0.0.1:8265 (see :func:`satecco.jobs.train.start_ray`).
    """
    if not address:
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Ray runs its workers at nice 15 by default, below its own daemons and the driver, whose
        # every wake-up then preempts a stage actor's threads. This instance exists for this run's
        # workers, so they run at normal priority.
        os.environ.setdefault("RAY_worker_niceness", "0")
    import ray

    if ray.is_initialized():
        return None
    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # satecco -v shows them
        _quiet_console()
    if address:
        ray.init(address=address, log_to_driver=log_to_driver)
    else:
        # One logical CPU above the cores leaves room for the light decode and write tasks beside stage
        # actors that claim every core for torch's threads.
        # "local", not None: Ray would join whatever instance /tmp/ray/ray_current_cluster or RAY_ADDRESS
        # names (another user's `ray start`, a stale one), and refuse num_cpus there.
        # Its processes inherit its address: Ray's state API, which Ray Train's placement-group cleaner
        # (an actor) asks whether the train controller lives, finds its instance through RAY_ADDRESS, else
        # /tmp/ray/ray_current_cluster, else whichever instance runs on the machine; with another Ray
        # instance there it failed on "multiple active Ray instances" or could ask the wrong one. The port
        # is this process's choice so that the address is known before the instance starts (Ray's head
        # reads RAY_GCS_SERVER_PORT); the driver's environment is restored after.
        port = free_port()
        with mock.patch.dict(os.environ, RAY_GCS_SERVER_PORT=str(port), RAY_ADDRESS=f"127.0.0.1:{port}"):
            context = ray.init("local", num_cpus=num_cpus or (os.cpu_count() or 1) + 1,
                               include_dashboard=dashboard, dashboard_host="127.0.0.1",
                               dashboard_port=free_port() if dashboard else None,
                               _node_ip_address="127.0.0.1", log_to_driver=log_to_driver)
    return f"http://{context.dashboard_url}" if not address and dashboard and context.dashboard_url else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _quiet_console() -> None:
    """Ray's and Ray Data's info lines (the instance started, each dataset's execution plan, and a
    progress report every 10 seconds when stdout is not a terminal) and Ray Data's own progress bars,
    which tear satecco's bar apart, leave the console: they stay in the session's log files
    (``ray-data.log``). Ray's warnings and errors still show; Ray Data's go to its log file only."""
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    for name, level in (("ray", logging.WARNING), ("ray.data", logging.ERROR)):
        for handler in logging.getLogger(name).handlers:  # the console's; Ray Data's file handler is not one
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(level)


#: Ray's core worker logs this at error level for every Ray Data actor pool: Ray Data passes its
#: actors' constructor arguments through the object store and restarts them (ray#53727). The pools
#: restart fine (tests/test_ray_pipeline.py kills a stage actor); the line only alarms.
FALSE_ALARM = re.compile(rb"\[[^]\n]* E [^]\n]*\] core_worker\.cc:\d+: [^\n]*has constructor arguments in the "
                         rb"object store[^\n]*\n?")


@contextlib.contextmanager
def without_false_alarms() -> Iterator[None]:
    """While the block runs, this process's stderr passes through a pipe that drops :data:`FALSE_ALARM`
    lines, which Ray's C++ core worker writes to file descriptor 2, out of reach of Python's logging.
    Written by hand: no Ray setting lowers that one line's level without hiding Ray's real errors too.
    Every other byte passes as it comes (progress bars included), and the pipe is drained before the
    block ends, so what follows prints after it. Start Ray before: its processes must not inherit it."""
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    console = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        # One log line is one write() of less than PIPE_BUF bytes: it arrives whole within one read.
        while chunk := os.read(read_end, 65536):
            try:
                os.write(console, FALSE_ALARM.sub(b"", chunk))
            except OSError:
                pass  # the console is gone: keep draining, so that no writer ever blocks on the pipe
        os.close(read_end)

    thread = threading.Thread(target=pump, name="satecco-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(console, 2)  # closes the pipe's last write end: the pump reads to its end and stops
        os.close(console)
        thread.join(timeout=10)


def job_working_copy() -> Path | None:
    """The current folder when this process is the entry point of a ``ray job submit --working-dir``
    job: a temporary copy of the submitter's folder, deleted with the job. None otherwise."""
    try:
        runtime_env = json.loads(os.environ.get(JOB_CONFIG_VARIABLE, "{}")).get("runtime_env") or {}
    except (ValueError, AttributeError):
        return None
    return Path.cwd().resolve() if runtime_env.get("working_dir") else None


def check_lasting(path: str | None, option: str) -> None:
    """Refuse (``ValueError``, one line) an output ``path`` that would land in a Ray job's temporary
    working copy (:func:`job_working_copy`), where it would vanish when the job ends."""
    copy = job_working_copy()
    if copy is None or not path or ("://" in path and not path.startswith("sqlite:///")):
        return
    local = Path(path.removeprefix("sqlite:///")).resolve()
    if local.is_relative_to(copy):
        raise ValueError(f"{option} {path}: under `ray job submit --working-dir` this is inside the job's "
                         f"temporary copy of the working folder ({copy}), deleted when the job ends; give "
                         f"an absolute path on storage that outlives the job (and that every node sees)")
