"""Inputs and outputs on an S3-compatible server on loopback (moto's server mode), both engines."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import numpy as np
import pytest
from media import audio_packets, plain_pyav_mp4

from satecco import storage
from satecco.build import build_pipeline
from satecco.engine_local import upscale_locally
from satecco.inputs import REPORT, VideoSettings, expand_inputs
from satecco.presets import ModelSpec
from satecco.video.read import read_frames

SPEC = ModelSpec(preset="tiny", steps=1)
OUTAGE = 8.0  # seconds an S3 endpoint stays down in the retry test
SETTINGS = VideoSettings(codec="ffv1", seed=2)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with bucket ``videos`` holding ``in/a.mp4`` (with audio) and ``in/b.mp4``."""
    from moto.server import ThreadedMotoServer

    # At the endpoint tests/conftest.py put in the environment before any Ray instance started.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=urlsplit(os.environ["AWS_ENDPOINT_URL"]).port)
    server.start()
    import boto3

    boto3.client("s3").create_bucket(Bucket="videos")
    folder = tmp_path_factory.mktemp("s3src")
    local = {"a.mp4": plain_pyav_mp4(folder / "a.mp4", n=8, height=16, width=16, audio=True),
             "b.mp4": plain_pyav_mp4(folder / "b.mp4", n=5, height=16, width=24)}
    for name, path in local.items():
        storage.upload(path, f"s3://videos/in/{name}")
    yield local
    server.stop()


def _remote_frames(uri: str, tmp_path) -> np.ndarray:
    return np.stack(list(read_frames(storage.fetch(uri, cache=tmp_path / "check"))))


def test_local_engine_reads_and_writes_s3(s3, tmp_path):
    inputs = expand_inputs(["s3://videos/in"])
    assert [(i.source, i.name) for i in inputs] == [("s3://videos/in/a.mp4", "a"), ("s3://videos/in/b.mp4", "b")]
    missing = "s3://videos/in/none.mp4"
    results = upscale_locally([*inputs, missing], "s3://videos/out", build_pipeline(SPEC), SETTINGS, progress=False)
    assert [r.status for r in results] == ["ok", "ok", "failed"]
    assert missing in results[2].error
    reference = upscale_locally([str(p) for p in s3.values()], tmp_path / "local", build_pipeline(SPEC), SETTINGS,
                          progress=False)
    for remote, local in zip(results[:2], reference, strict=True):
        assert remote.output.startswith("s3://videos/out/")
        np.testing.assert_array_equal(_remote_frames(remote.output, tmp_path),
                                      np.stack(list(read_frames(local.output))))
    assert audio_packets(storage.fetch("s3://videos/out/a.mkv", cache=tmp_path / "audio")) == \
        audio_packets(s3["a.mp4"])


def test_ray_engine_reads_and_writes_s3(s3, tmp_path, ray_local):
    from satecco.pipelines.config import PipelineConfig
    from satecco.pipelines.upscale import upscale_on_ray

    results = upscale_on_ray(["s3://videos/in/a.mp4", "s3://videos/in/b.mp4"], "s3://videos/ray", SPEC, SETTINGS,
                             PipelineConfig(windows_per_segment=1, decode_cpus=0.25, write_cpus=0.25),
                             progress=False)
    assert [r.status for r in results] == ["ok", "ok"]
    reference = upscale_locally([str(s3["a.mp4"])], tmp_path / "local", build_pipeline(SPEC), SETTINGS, progress=False)
    frames = _remote_frames("s3://videos/ray/a.mkv", tmp_path)
    expected = np.stack(list(read_frames(reference[0].output)))
    assert frames.shape == expected.shape and np.abs(frames.astype(int) - expected).max() <= 1
    assert storage.exists(f"s3://videos/ray/{REPORT}")
    assert not storage.list_files("s3://videos/ray/.satecco-parts", recursive=True)  # parts cleaned after the join


def test_remote_calls_are_tried_again_until_the_server_answers(s3, tmp_path, monkeypatch):
    """The endpoint is down when the fetch starts and comes up 8 s later: the fetch waits it out instead
    of failing the input. pyarrow's S3 client gives up on a refused connection after about 6 s of its
    own retries (measured here: 6.1 s), so only our tries with backoff bridge an outage this long."""
    import threading
    import time

    from media import free_port
    from moto.server import ThreadedMotoServer

    port = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    late = ThreadedMotoServer(ip_address="127.0.0.1", port=port)  # moto keeps its buckets per process
    starter = threading.Timer(OUTAGE, late.start)
    started = time.perf_counter()
    starter.start()
    try:
        local = storage.fetch("s3://videos/in/a.mp4", cache=tmp_path / "cache")
    finally:
        starter.join()
        late.stop()
    assert time.perf_counter() - started >= OUTAGE
    assert local.read_bytes() == s3["a.mp4"].read_bytes()


def test_the_cache_stays_under_its_cap_evicting_the_least_recently_used(s3, tmp_path, monkeypatch):
    import time

    storage.upload(s3["a.mp4"], "s3://videos/in/c.mp4")
    a_size, b_size = (s3[name].stat().st_size for name in ("a.mp4", "b.mp4"))
    cap = 2 * a_size + b_size // 2  # a and its copy c fit; a, b and c do not
    monkeypatch.setenv("SATECCO_CACHE_BYTES", str(cap))
    cache = tmp_path / "cache"
    a = storage.fetch("s3://videos/in/a.mp4", cache=cache)
    time.sleep(0.05)
    b = storage.fetch("s3://videos/in/b.mp4", cache=cache)
    time.sleep(0.05)
    assert storage.fetch("s3://videos/in/a.mp4", cache=cache) == a  # a cache hit: a is now the newest
    time.sleep(0.05)
    c = storage.fetch("s3://videos/in/c.mp4", cache=cache)
    assert a.is_file() and c.is_file() and not b.exists()  # b, least recently used, made room
    assert sum(p.stat().st_size for p in cache.glob("*/*")) <= cap
