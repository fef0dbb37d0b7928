"""Atomic output: write to a temporary name beside the target, then rename.

A failed or interrupted write leaves the old file or folder (or nothing) behind, never a
partial one; output folders are published whole (:func:`staged_dir`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from simcluster.errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it onto ``path`` on success.

    The folder is created if needed. On an exception the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def staged_dir(out: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``out``; on success publish it as ``out``, whole.

    The folder appears complete or not at all: it is written as a hidden sibling
    (``.NAME.staging-PID-*``) and published with one rename. An existing ``out`` is replaced
    by an atomic exchange of the two folders where the system has one (Linux
    ``renameat2``), else by renaming it aside first; in no case does ``out`` ever hold a mix
    of old and new files. A lock file beside it (``.NAME.lock``) makes a second writer of the
    same folder fail at once; leftovers of writers that were killed are removed by the next
    one. On an exception the staging folder is removed and ``out`` is untouched.

    Raises:
        OutputError: ``out`` is a file, or another process is writing it.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: a file is there, not a folder; give a folder path for the "
                          "output (or remove the file).")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        _remove_leftovers(out)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-{os.getpid()}-",
                                      dir=out.parent))
        try:
            yield stage
            os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; give what mkdir would
            _publish(stage, out)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise


def _publish(stage: Path, out: Path) -> None:
    """Make ``stage`` appear at ``out`` (replacing a folder there) without exposing a mix."""
    if not out.exists():
        os.rename(stage, out)
        return
    if _exchange(stage, out):  # stage now holds the old folder
        shutil.rmtree(stage, ignore_errors=True)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
    os.rename(out, old / out.name)
    os.rename(stage, out)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # no such call, or the file system
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove_leftovers(out: Path) -> None:
    """Staging and set-aside folders of earlier writers of ``out`` (only callable under its
    lock, so their writers are gone)."""
    for pattern in (f".{out.name}.staging-*", f".{out.name}.old-*"):
        for leftover in out.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold the lock of output folder ``out`` (``.NAME.lock`` beside it; released when the
    process ends, however it ends). The lock file stays: removing it would let two writers
    lock two different files."""
    try:
        import fcntl
    except ImportError:  # no advisory locks here (Windows): publication is still atomic
        yield
        return
    lock = out.parent / f".{out.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"{out}: another simcluster process is writing this folder "
                              f"(it holds {lock}); wait for it to finish, or give another "
                              "output folder.") from None
        yield
    finally:
        os.close(fd)


def write_once(path: str | Path, write: Callable[[Path], None]) -> bool:
    """Write ``path`` with ``write(tmp)`` unless it exists; True if this call published it.

    The file appears whole (hard link of a finished temporary file), and only once: if
    another writer published it first, this one's result is dropped.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
