"""Local paths and pyarrow filesystem URIs (``s3://``, ``gs://``, ``hdfs://``, …) behind one small interface.

Video decoding and encoding need seekable local files, so a remote input is fetched once into a
local cache (per machine) and a remote output is written locally and then uploaded whole: an object
store shows an object only once its upload is complete, so nothing partial appears at a final URI.
Credentials and endpoints come from the usual environment (``AWS_*``, ``AWS_ENDPOINT_URL``, …).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def is_remote(path) -> bool:
    """True for a filesystem URI other than ``file://``."""
    return "://" in str(path) and not str(path).startswith("file://")


def _filesystem(uri: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def join(base, name: str) -> str:
    """``base/name`` for a local folder or a URI."""
    return f"{str(base).rstrip('/')}/{name}" if is_remote(base) else str(Path(base) / name)


def exists(path) -> bool:
    if not is_remote(path):
        return Path(path).exists()
    import pyarrow.fs

    fs, inner = _filesystem(str(path))
    return fs.get_file_info(inner).type != pyarrow.fs.FileType.NotFound


def list_files(uri: str) -> list[str] | None:
    """The files directly inside a remote folder, sorted; ``None`` when ``uri`` is not a folder."""
    import pyarrow.fs

    fs, inner = _filesystem(uri)
    if fs.get_file_info(inner).type != pyarrow.fs.FileType.Directory:
        return None
    infos = fs.get_file_info(pyarrow.fs.FileSelector(inner))
    scheme = uri.split("://", 1)[0]
    return sorted(f"{scheme}://{i.path}" for i in infos if i.type == pyarrow.fs.FileType.File)


def fetch(uri: str, cache: str | Path | None = None) -> Path:
    """A local copy of a remote file, downloaded once per machine (keyed by URI, size and mtime)."""
    import pyarrow.fs

    fs, inner = _filesystem(uri)
    info = fs.get_file_info(inner)
    if info.type != pyarrow.fs.FileType.File:
        raise FileNotFoundError(f"{uri}: no such file")
    key = hashlib.sha1(f"{uri}|{info.size}|{info.mtime_ns}".encode()).hexdigest()[:16]
    folder = Path(cache or Path(tempfile.gettempdir()) / "satecco-cache") / key
    local = folder / Path(inner).name
    if local.is_file() and local.stat().st_size == info.size:
        return local
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, fs.open_input_stream(inner) as source:
            shutil.copyfileobj(source, out, length=1 << 22)
        os.replace(tmp, local)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return local


def upload(local: Path, uri: str) -> None:
    """Copy a local file, or a folder of files (PNG frames), to ``uri``."""
    fs, inner = _filesystem(uri)
    files = sorted(local.iterdir()) if local.is_dir() else [local]
    for file in files:
        target = f"{inner}/{file.name}" if local.is_dir() else inner
        with open(file, "rb") as source, fs.open_output_stream(target) as out:
            shutil.copyfileobj(source, out, length=1 << 22)


def remove(uri: str) -> None:
    """Delete a remote file or folder (missing is fine)."""
    import pyarrow.fs

    fs, inner = _filesystem(uri)
    kind = fs.get_file_info(inner).type
    if kind == pyarrow.fs.FileType.Directory:
        fs.delete_dir(inner)
    elif kind == pyarrow.fs.FileType.File:
        fs.delete_file(inner)
