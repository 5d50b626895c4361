"""Writing outputs atomically: a reader (or a crash) sees the old output or the new one, never half of one."""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distill_cli.errors import DistillError, UsageError

# What a write meets when the storage, not the program, is at fault: said as one line naming the output.
STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """A full disk, a quota, read-only or forbidden storage while writing ``path``: one line that names it."""
    try:
        yield
    except OSError as err:
        if err.errno not in STORAGE_ERRORS:
            raise
        raise DistillError(f"cannot write {path}: {os.strerror(err.errno)}; nothing was written there") from None


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that go by it still work); when the
    block succeeds it replaces ``path`` in one rename, when it fails it is removed."""
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Yield a temporary folder path beside ``path`` (not yet created: the writer makes it); when the block
    succeeds it replaces ``path`` in one rename, when it fails it is removed."""
    tmp = path.with_name(f".{path.name}.tmp-{time.time_ns()}")
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield tmp
            move_into_place(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def move_into_place(src: Path, dest: Path) -> None:
    """Rename the finished folder ``src`` to ``dest``, replacing a folder already there."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{time.time_ns()}")
        dest.rename(old)
    src.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_replaceable(path: Path, overwrite: bool, ours, taken: str, not_ours: str) -> None:
    """An existing ``path`` is replaced only with ``overwrite`` (else ``taken``), and only when this tool made
    it, as ``ours(path)`` says (else ``not_ours``): what the tool did not make is never touched."""
    if not path.exists():
        return
    if not overwrite:
        raise UsageError(taken)
    if not ours(path):
        raise UsageError(not_ours)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if need be) for the block; other processes wait for it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cache_lock(cache: Path, name: str):
    """``file_lock`` on the cache's lock ``name``: processes that would make one cache entry at once (search
    workers, DDP ranks, two runs) take turns, and the later reuses what the first made."""
    return file_lock(cache / "locks" / f"{name}.lock")


def try_lock(path: Path):
    """An exclusive lock on ``path`` (created if need be), held until the returned file is closed or the
    process ends, however it ends; None when another process holds it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle
