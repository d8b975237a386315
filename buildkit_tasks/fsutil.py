"""Small file helpers: atomic writes and checksums. Nothing here knows about builds."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds.

    A failure (or KeyboardInterrupt) removes the temporary file, so ``dest`` is never half-written.
    The file's data is flushed to disk (``fsync``) before the rename and the directory after
    it, so a crash or power loss leaves the old file or the whole new one, never an empty one.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts are for sharing
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.replace(tmp_path, dest)
        _fsync(dest.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def created_dirs(path: Path) -> Iterator[Path]:
    """Make directory ``path`` (and missing parents) for the block; when the block fails,
    remove again those it made that are still empty, so a failed step leaves no stray
    directories behind (an empty ``dist/charts/``)."""
    made = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        for p in made:  # deepest first
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


@contextlib.contextmanager
def scratch_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A new directory ``<parent>/<prefix><random>`` for the block, removed afterwards however
    the block ends. Unlike :class:`tempfile.TemporaryDirectory`, a Ctrl-C can leave it behind
    at no moment: its name is chosen before it is made, and a KeyboardInterrupt that lands
    while it is being removed is held until the removal is done, then raised."""
    path = parent / f"{prefix}{secrets.token_hex(5)}"
    try:
        path.mkdir(mode=0o700)
        yield path
    finally:
        interrupted: BaseException | None = None
        while True:
            try:
                shutil.rmtree(path, ignore_errors=True)
                break
            except KeyboardInterrupt as exc:  # finish removing first
                interrupted = exc
        if interrupted is not None:
            raise interrupted


_HELD: dict[Path, int] = {}  # lock file -> open descriptor, held until the process exits


def hold_lock(path: Path, on_wait: Callable[[str], None]) -> None:
    """Hold an exclusive ``flock`` on ``path`` (made if missing) for the rest of the process;
    calling again for the same path does nothing. When another process holds it,
    ``on_wait`` gets what that process wrote into the file (its pid and task) and the call
    blocks until the lock is free (Ctrl-C interrupts the wait). The kernel releases the lock
    when the process ends, however it ends, so a crash never leaves it held."""
    import fcntl

    path = path.resolve()
    if path in _HELD:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait(_holder(fd))
            fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv[1:])[:150]}\n".encode(), 0)
    _HELD[path] = fd


def _holder(fd: int, patience: float = 0.5) -> str:
    """What the process holding the lock file ``fd`` wrote into it (``pid N: task``). It
    writes just after taking the lock, so a file still empty, or still naming a process that
    has ended (an earlier holder), is read again every 10 ms for up to ``patience`` seconds;
    ``unknown`` when it stays empty."""
    import time

    deadline = time.monotonic() + patience
    while True:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        if (text and _alive(text)) or time.monotonic() >= deadline:
            return text or "unknown"
        time.sleep(0.01)


def _alive(holder: str) -> bool:
    """Whether the process a lock file's ``pid N: ...`` names is running (True when the text
    names none)."""
    pid = holder.removeprefix("pid ").partition(":")[0]
    if not holder.startswith("pid ") or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        pass
    return True


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file's data, or a directory's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(dest: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``dest`` through a temporary file and a rename."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")


def keep_cache_text(dest: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to the cache file ``dest`` through a temporary file beside it
    (named by process and thread, so concurrent writers never share one) and a rename, so a
    reader sees the old file or the whole new one. Best effort and unsynced (a cache is only
    ever a shortcut; :func:`write_text_atomic` is for artifacts): any OSError is swallowed."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, dest)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cache_home() -> Path:
    """This machine's cache of buildkit-tasks (input manifests, image labels, wheels):
    ``$BUILDKIT_CACHE_HOME``, else ``$XDG_CACHE_HOME/buildkit-tasks``, else
    ``~/.cache/buildkit-tasks``. Outside any project, so a project's tree (and with it its
    version) never changes because of it."""
    if os.environ.get("BUILDKIT_CACHE_HOME"):
        return Path(os.environ["BUILDKIT_CACHE_HOME"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "buildkit-tasks"
