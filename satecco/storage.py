"""Local paths and pyarrow filesystem URIs (``s3://``, ``gs://``, ``hdfs://``, …) behind one small interface.

Video decoding and encoding need seekable local files, so a remote input is fetched once into a
local cache (per machine) and a remote output is written locally and then uploaded whole: an object
store shows an object only once its upload is complete, so nothing partial appears at a final URI.
Credentials and endpoints come from the usual environment (``AWS_*``, ``AWS_ENDPOINT_URL``, …).

Remote calls that fail with a transient error are tried again with exponential backoff
(:data:`REMOTE_TRIES` in all) before the one input fails; the cache keeps at most
``SATECCO_CACHE_BYTES`` (default 50 GiB) and evicts the least recently used files first.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

#: Tries of a remote call in all, the first wait between tries (seconds, doubled after each try).
REMOTE_TRIES, FIRST_WAIT = 4, 0.5
DEFAULT_CACHE_BYTES = 50 * 2**30


def is_remote(path) -> bool:
    """True for a filesystem URI other than ``file://``."""
    return "://" in str(path) and not str(path).startswith("file://")


def remote_retried(function: Callable) -> Callable:
    """Try ``function`` again, with exponential backoff, when it fails with an :class:`OSError` (how pyarrow
    reports network and server errors) on a remote path among its first two arguments. A missing file
    is no transient error and fails at once; local paths are never retried."""
    @wraps(function)
    def wrapper(*args, **kwargs):
        if not any(is_remote(arg) for arg in args[:2]):
            return function(*args, **kwargs)
        for attempt in range(1, REMOTE_TRIES + 1):
            try:
                return function(*args, **kwargs)
            except FileNotFoundError:
                raise
            except OSError:
                if attempt == REMOTE_TRIES:
                    raise
                time.sleep(FIRST_WAIT * 2 ** (attempt - 1))
    return wrapper


def _filesystem(uri: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def canonical(path) -> str:
    """What two spellings of one path share: a local path made absolute, a URI as it is."""
    return str(path).rstrip("/") if is_remote(path) else str(Path(path).resolve())


def join(base, name: str) -> str:
    """``base/name`` for a local folder or a URI."""
    return f"{str(base).rstrip('/')}/{name}" if is_remote(base) else str(Path(base) / name)


@remote_retried
def exists(path) -> bool:
    if not is_remote(path):
        return Path(path).exists()
    import pyarrow.fs

    fs, inner = _filesystem(str(path))
    return fs.get_file_info(inner).type != pyarrow.fs.FileType.NotFound


def _listing(uri: str, recursive: bool = False) -> list | None:
    """pyarrow's ``FileInfo`` of everything inside a remote folder; ``None`` when ``uri`` is no folder."""
    import pyarrow.fs

    fs, inner = _filesystem(uri)
    if fs.get_file_info(inner).type != pyarrow.fs.FileType.Directory:
        return None
    return fs.get_file_info(pyarrow.fs.FileSelector(inner, recursive=recursive))


@remote_retried
def list_files(uri: str, recursive: bool = False) -> list[str] | None:
    """The files inside a remote folder (``recursive``: in its subfolders too), sorted; ``None`` when
    ``uri`` is not a folder."""
    import pyarrow.fs

    infos = _listing(uri, recursive)
    scheme = uri.split("://", 1)[0]
    return None if infos is None else sorted(f"{scheme}://{i.path}" for i in infos
                                             if i.type == pyarrow.fs.FileType.File)


@remote_retried
def children(path) -> list[str]:
    """The entries (files and folders) directly inside a local or remote folder, sorted; ``[]`` when it
    is no folder."""
    if not is_remote(path):
        return sorted(str(p) for p in Path(path).iterdir()) if Path(path).is_dir() else []
    scheme = str(path).split("://", 1)[0]
    return sorted(f"{scheme}://{i.path}" for i in _listing(str(path)) or [])


@remote_retried
def fetch(uri: str, cache: str | Path | None = None) -> Path:
    """A local copy of a remote file, downloaded once per machine (keyed by URI, size and mtime)."""
    import pyarrow.fs

    fs, inner = _filesystem(uri)
    info = fs.get_file_info(inner)
    if info.type != pyarrow.fs.FileType.File:
        raise FileNotFoundError(f"{uri}: no such file")
    key = hashlib.sha1(f"{uri}|{info.size}|{info.mtime_ns}".encode()).hexdigest()[:16]
    root = Path(cache or Path(tempfile.gettempdir()) / "satecco-cache")
    local = root / key / Path(inner).name
    if local.is_file() and local.stat().st_size == info.size:
        os.utime(local)  # recently used: the last to be evicted
        return local
    _make_room(root, info.size)
    with atomic_output(local) as partial, open(partial, "wb") as out, fs.open_input_stream(inner) as source:
        shutil.copyfileobj(source, out, length=1 << 22)
    return local


def _make_room(root: Path, incoming: int) -> None:
    """Evict the least recently used cached files until ``incoming`` more bytes fit under the cap."""
    cap = int(os.environ.get("SATECCO_CACHE_BYTES", DEFAULT_CACHE_BYTES))
    cached = []
    for file in root.glob("*/*"):
        if file.name.startswith("."):
            continue  # a download in progress (atomic_output's partial)
        try:
            cached.append((file.stat().st_mtime, file.stat().st_size, file))
        except OSError:
            continue  # evicted by another process meanwhile
    total = sum(size for _, size, _ in cached)
    for _, size, file in sorted(cached):
        if total + incoming <= cap:
            break
        remove_local(file.parent)  # a reader that has it open keeps reading: POSIX unlinks lazily
        total -= size


def local_copy(path, cache: str | Path | None = None) -> str:
    """``path`` itself when local, else :func:`fetch`'s copy of it (in ``cache``, else this machine's cache)."""
    return str(fetch(str(path), cache)) if is_remote(path) else str(path)


def make_folder(path) -> None:
    """Create a local folder and its parents, and check that it can be written (:class:`OSError` if
    not); a remote one needs none: objects make their prefixes."""
    if not is_remote(path):
        Path(path).mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(f"{path}: not writable")


@contextmanager
def atomic_output(target, replace_folder: bool = False) -> Iterator[Path]:
    """A local path to write ``target`` (a file, or a folder of files) to; it becomes ``target`` whole.

    Local ``target``: the path is a hidden ``.<stem>.partial-<random><suffix>`` beside it (its folder
    is created; the suffix stays last, so writers that choose a format by suffix see the target's), moved into place with :func:`os.replace` when the block ends without an exception (an
    existing file is replaced; an existing folder only if empty). Remote ``target``: a path in a local
    temporary folder, uploaded whole when the block ends (an object store shows an object only once it
    is complete). On an exception the partial output is deleted and ``target`` is left as it was.
    """
    if is_remote(target):
        with tempfile.TemporaryDirectory(prefix="satecco-out-") as tmp:
            local = Path(tmp) / str(target).rstrip("/").rsplit("/", 1)[-1]
            yield local
            upload(local, str(target))
        return
    target = Path(target)
    if target.is_dir() and any(target.iterdir()) and not replace_folder:
        raise ValueError(f"output folder {str(target)!r} exists and is not empty")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.stem}.partial-{secrets.token_hex(4)}{target.suffix}"
    try:
        yield partial
        if replace_folder and target.is_dir():
            remove_local(target)
        os.replace(partial, target)
    except BaseException:
        remove_local(partial)
        raise


def remove_local(path: Path) -> None:
    """Delete a local file or folder (missing is fine)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@remote_retried
def upload(local: Path, uri: str) -> None:
    """Copy a local file, or a folder of files (PNG frames), to ``uri``."""
    fs, inner = _filesystem(uri)
    files = sorted(local.iterdir()) if local.is_dir() else [local]
    for file in files:
        target = f"{inner}/{file.name}" if local.is_dir() else inner
        with open(file, "rb") as source, fs.open_output_stream(target) as out:
            shutil.copyfileobj(source, out, length=1 << 22)


def remove_if_empty(path) -> None:
    """Delete a local folder if nothing is in it (a remote "folder" is only a prefix: nothing to do)."""
    if not is_remote(path):
        try:
            Path(path).rmdir()
        except OSError:
            pass  # not empty, or already gone


@remote_retried
def remove(path) -> None:
    """Delete a local or remote file or folder (missing is fine)."""
    if not is_remote(path):
        remove_local(Path(path))
        return
    import pyarrow.fs

    uri = str(path)
    fs, inner = _filesystem(uri)
    kind = fs.get_file_info(inner).type
    if kind == pyarrow.fs.FileType.Directory:
        fs.delete_dir(inner)
    elif kind == pyarrow.fs.FileType.File:
        fs.delete_file(inner)
