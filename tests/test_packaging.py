"""What `pip install` puts in site-packages: one top-level name, with the design card's folders inside."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_one_top_level_package(tmp_path):
    source = tmp_path / "source"  # a copy: the build leaves build/ and *.egg-info beside the sources
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "outputs", "build", "*.egg-info", "mlruns",
                                                                  "__pycache__", "mlflow.db", "mlartifacts"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                           "--wheel-dir", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("satecco-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"satecco", wheel.name.split("-py")[0] + ".dist-info"}
    # pipelines/ and jobs/ install inside the package; the embedded default's weights and the dry run's
    # cost table come along
    assert {"satecco/pipelines/upscale.py", "satecco/jobs/train_unet.py", "satecco/video/read.py",
            "satecco/weights/tiny/satecco.safetensors", "satecco/weights/tiny/vae/config.json",
            "satecco/costs.yaml"} <= set(names)
