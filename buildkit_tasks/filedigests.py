"""sha256 digests of build context files, remembered by file status (as git's index does).

Hashing every file of every build context is most of an unchanged run's own work (164
contexts holding a 2 MB binary each: about 0.3 s of two cores). A file whose status (device,
inode, size, mode, mtime and ctime, all in nanoseconds) is what it was when it was hashed is
taken to hold what it held then. The ctime changes with every write, ``chmod``, rename or
``touch`` and cannot be set back from user space, so a rewritten file is hashed again even
when its size and mtime were restored. A file whose status changed less than
:data:`RACY_SECONDS` before it was hashed is not remembered: a write in the same clock tick
could leave its status as it was (git's "racily clean" entries).

The listing of the context (which paths Docker sends) is remembered the same way, by the
status (device, inode, mode, mtime and ctime) of every directory the listing read: adding,
removing or renaming an entry changes its directory's mtime and ctime. So an unchanged run
neither lists nor reads the context (nor imports the ``docker`` SDK, whose pattern matcher
makes the listing: ~0.2 s of a ~1 s run). A directory whose status changed is listed again
(one ``scandir``) and compared with its remembered shape: the names in it, each with
whether it is a directory (symlinks followed) and whether it is a symlink, all that the
SDK's walk looks at; the same shape gives the same listing. Editors and ``sed -i`` save a
file by writing a new one and renaming it over the old, which changes the directory's
status but not its shape: such an edit costs one ``scandir``, not a walk.

Kept per build context and view of it (its ``.dockerignore`` patterns and Dockerfile: images
sharing a context with other patterns see other files, and must not drop each other's entries)
as ``files/<sha256 of both>.json`` in :func:`~.fsutil.cache_home`: ``{"context": PATH,
"view": TEXT, "files": {relative path: [dev, ino, size, mode, mtime_ns, ctime_ns, sha256]},
"listing": {"paths": [relative path, ...], "dirs": {relative path: [dev, ino, mode,
mtime_ns, ctime_ns]}, "shapes": {relative path: sha256 of its entries}}}``, written to a
temp file, then renamed, and only when something changed. Best effort: an unreadable or
unwritable cache only means files are listed and hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .fsutil import cache_home, keep_cache_text, sha256_file

RACY_SECONDS = 2.0


def directory() -> Path:
    """Where file digests are kept: ``files`` in the cache home."""
    return cache_home() / "files"


def _status(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mode, st.st_mtime_ns, st.st_ctime_ns]


def _dir_status(path: str) -> list[int] | None:
    """A directory's status without its size (which says nothing on some file systems), None
    when ``path`` is missing or not a directory (a symlink to one included)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    return [st.st_dev, st.st_ino, st.st_mode, st.st_mtime_ns, st.st_ctime_ns]


def _dir_shape(path: str) -> str | None:
    """sha256 of what the SDK's walk sees of a directory: each entry's name, whether it is a
    directory (symlinks followed, as ``os.path.isdir``) and whether it is a symlink; None
    when it cannot be listed."""
    try:
        with os.scandir(path) as found:
            items = sorted(f"{e.name}\0{e.is_dir():d}{e.is_symlink():d}" for e in found)
    except OSError:
        return None
    return hashlib.sha256("\n".join(items).encode("utf-8", "surrogateescape")).hexdigest()


def _settled(status: list[int], started_ns: int) -> bool:
    """Whether a status (mtime and ctime last) last changed over RACY_SECONDS before."""
    return started_ns - max(status[-2], status[-1]) > RACY_SECONDS * 1e9


class NotRemembered(Exception):
    """Raised by a :class:`ContextDigests` made ``remembered_only`` where it would have to
    list a directory or read a file."""


class ContextDigests:
    """The remembered digests of one build context's files.

    ``context``: the context directory (absolute); ``view``: what decides which of its files
    are sent (the ``.dockerignore`` patterns and the Dockerfile's path, as text). Use
    :meth:`listing` for the paths to send, :meth:`sha256` for each regular file, then
    :meth:`save` (entries of files not asked about are dropped then). ``remembered_only``:
    answer only from what is remembered (statuses still checked), raising
    :class:`NotRemembered` instead of walking or reading: a cheap first try that needs no
    thread (an unchanged context costs a few ``stat`` calls)."""

    def __init__(self, context: Path, view: str = "", remembered_only: bool = False) -> None:
        self.context, self.view = str(context), view
        self.remembered_only = remembered_only
        name = hashlib.sha256(f"{self.context}\0{view}".encode("utf-8", "surrogateescape"))
        self.path = directory() / f"{name.hexdigest()[:32]}.json"
        self._old: dict[str, list] = {}
        self._new: dict[str, list] = {}
        self._old_listing: dict | None = None
        self._new_listing: dict | None = None
        try:
            data = json.loads(self.path.read_text("utf-8"))
            if (
                isinstance(data, dict)
                and data.get("context") == self.context
                and data.get("view") == view
            ):
                files = data.get("files")
                self._old = files if isinstance(files, dict) else {}
                listing = data.get("listing")
                self._old_listing = listing if isinstance(listing, dict) else None
        except (OSError, ValueError):
            pass

    def listing(self, walk: Callable[[], tuple[Iterable[str], Iterable[str]]]) -> list[str]:
        """The context's paths to send (relative, sorted): remembered while every directory
        the remembered listing read has its status or, where that changed, its shape; else
        ``walk()``, which returns the paths and the relative paths (``""``: the context) of
        every directory it read.

        What is kept of each directory must describe it as it was no later than the walk:
        its status, then its shape, are read before the walk (for the directories the last
        listing read; a change after that shows as another shape next time), a status
        changed less than RACY_SECONDS before kept as unknown (its shape is checked next
        time); a directory first met by the walk is read after it, shape first, and the
        listing is not kept unless its status had settled."""
        old = self._old_listing
        if old is not None and (still := self._still(old)) is not None:
            self._new_listing = still
            return list(old["paths"])
        if self.remembered_only:
            raise NotRemembered(self.context)
        self._new_listing = None
        known = set(old["dirs"]) if old is not None and isinstance(old.get("dirs"), dict) else {""}
        before = {d: self._look(d) for d in known}
        started = time.time_ns()
        walked, read = walk()
        listed = sorted(walked)
        dirs: dict[str, list[int] | None] = {}
        shapes: dict[str, str] = {}
        for d in {"", *read}:
            st, shape = before.get(d, (None, None))
            if st is not None and shape is not None:
                dirs[d] = st if _settled(st, started) else None
            else:
                shape = _dir_shape(os.path.join(self.context, d))
                st = _dir_status(os.path.join(self.context, d))
                if shape is None or st is None or not _settled(st, started):
                    return listed
                dirs[d] = st
            shapes[d] = shape
        self._new_listing = {"paths": listed, "dirs": dirs, "shapes": shapes}
        return listed

    def _look(self, rel: str) -> tuple[list[int] | None, str | None]:
        """A directory's status, then its shape (that order: a change between the two shows
        in the shape)."""
        path = os.path.join(self.context, rel)
        st = _dir_status(path)
        return st, _dir_shape(path) if st is not None else None

    def _still(self, old: dict) -> dict | None:
        """The remembered listing ``old``, statuses brought up to date, when every directory
        it read has the same status, or else the same shape; None when one changed or the
        entry is damaged."""
        paths, dirs, shapes = old.get("paths"), old.get("dirs"), old.get("shapes")
        if not (isinstance(paths, list) and isinstance(dirs, dict) and "" in dirs):
            return None
        now = {d: _dir_status(os.path.join(self.context, d)) for d in dirs}
        moved = {d for d, st in now.items() if st is None or st != dirs[d]}
        if not moved:
            return old
        if not isinstance(shapes, dict):
            return None
        started = time.time_ns()
        for d in moved:
            if shapes.get(d) is None or _dir_shape(os.path.join(self.context, d)) != shapes[d]:
                return None
        kept = {
            d: st if d not in moved or (st is not None and _settled(st, started)) else None
            for d, st in now.items()
        }
        return {"paths": paths, "dirs": kept, "shapes": shapes}

    def forget_listing(self) -> None:
        """Drop the remembered listing (a path it named is gone): the next
        :meth:`listing` walks."""
        self._old_listing = None

    def sha256(self, rel: str, full: Path, st: os.stat_result) -> str:
        """Hex sha256 of the regular file ``full`` (``rel`` to the context, its ``lstat``
        ``st``): remembered when its status is unchanged, else read (OSError propagates)."""
        status = _status(st)
        entry = self._old.get(rel)
        if (
            isinstance(entry, list)
            and len(entry) == 7
            and entry[:6] == status
            and isinstance(entry[6], str)
        ):
            self._new[rel] = entry
            return entry[6]
        if self.remembered_only:
            raise NotRemembered(str(full))
        started = time.time_ns()
        digest = sha256_file(full)
        # ctime is the last change of content or status: only a settled file is kept
        if _settled(status, started):
            self._new[rel] = [*status, digest]
        return digest

    def save(self) -> None:
        """Write what this run hashed or found unchanged, when it differs from what was kept."""
        if self._new == self._old and self._new_listing == self._old_listing:
            return
        data = {"context": self.context, "view": self.view, "files": self._new}
        if self._new_listing is not None:
            data["listing"] = self._new_listing
        keep_cache_text(self.path, json.dumps(data))
