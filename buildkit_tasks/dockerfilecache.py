"""Parsed Dockerfiles kept between runs: what :func:`.dockerfiles.load` made of a Dockerfile's
text (with its build args), so a run whose Dockerfiles did not change parses none of them.

Parsing is BuildKit's Go parser plus our reading of its instructions: ~0.13 ms a Dockerfile,
~21 ms for a 164-image graph on every ``inv`` that plans (``image.graph``, ``image.build``...),
against ~2 ms to read this cache. Entries are keyed by the sha256 of the text and build args,
so an edited Dockerfile is parsed again; the whole file is dropped when this package's parser
(``dockerfiles.py``) or the ``dockerfile`` extension changes. One JSON file in
:func:`.fsutil.cache_home`, written (temp file, then rename) only when a run parsed something
new; best effort: an unreadable or damaged cache is a miss, never an error.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import dockerfiles
from .dockerfiles import Dockerfile, ImageUse, Stage
from .fsutil import cache_home, keep_cache_text

FILE = "dockerfiles.json"
SCHEMA = 1
KEEP = 1024  # entries at most (~170 KB): those this run used first, then the others read


class _Kept:
    """The cache file's entries (read on first use) and what this process added."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.read: dict[str, Any] | None = None  # key -> encoded Dockerfile
        self.used: dict[str, Any] = {}  # key -> encoded, asked or parsed in this process
        self.added = False
        self.path: Path | None = None


_KEPT = _Kept()


def key(text: str, build_args: Mapping[str, str]) -> str:
    """The cache key of ``text`` parsed with ``build_args``."""
    data = json.dumps([text, sorted(build_args.items())], ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


def recall(text: str, build_args: Mapping[str, str]) -> Dockerfile | None:
    """The Dockerfile kept for ``text`` with ``build_args``, or None."""
    k = key(text, build_args)
    with _KEPT.lock:
        read = _read()
        encoded = _KEPT.used.get(k) or read.get(k)
        if encoded is None:
            return None
        try:
            found = _decode(encoded)
        except (TypeError, ValueError):
            return None
        _KEPT.used[k] = encoded
        return found


def remember(text: str, build_args: Mapping[str, str], parsed: Dockerfile) -> None:
    """Keep ``parsed`` for ``text`` with ``build_args`` (written by :func:`save`)."""
    k = key(text, build_args)
    with _KEPT.lock:
        _read()
        _KEPT.used[k] = _encode(parsed)
        _KEPT.added = True


def save() -> None:
    """Write the cache when this process parsed a Dockerfile it did not hold: the entries used
    in this process, then the others read, :data:`KEEP` at most. Best effort."""
    with _KEPT.lock:
        if not _KEPT.added or _KEPT.path is None:
            return
        entries = dict(_KEPT.used)
        for k, v in (_KEPT.read or {}).items():
            if len(entries) >= KEEP:
                break
            entries.setdefault(k, v)
        body = {"schema": SCHEMA, "parser": _parser_version(), "entries": entries}
        keep_cache_text(_KEPT.path, json.dumps(body, separators=(",", ":")))
        _KEPT.read, _KEPT.added = entries, False


def _read() -> dict[str, Any]:
    """The entries of the cache file, read once per process and cache home (the lock held)."""
    path = cache_home() / FILE
    if _KEPT.read is None or _KEPT.path != path:
        _KEPT.path, _KEPT.read, _KEPT.used, _KEPT.added = path, {}, {}, False
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            body = None
        if (
            isinstance(body, dict)
            and body.get("schema") == SCHEMA
            and body.get("parser") == _parser_version()
            and isinstance(body.get("entries"), dict)
        ):
            _KEPT.read = body["entries"]
    return _KEPT.read


@functools.cache
def _parser_version() -> str:
    """What the parsing depends on: ``dockerfiles.py`` and the ``dockerfile`` extension, by
    size and modification time."""
    parts = [dockerfiles.__file__]
    spec = importlib.util.find_spec("dockerfile")
    if spec is not None and spec.origin:
        parts.append(spec.origin)
    out = []
    for part in parts:
        try:
            st = os.stat(part)
        except OSError:
            return "unknown"
        out.append(f"{st.st_size}:{st.st_mtime_ns}")
    return " ".join(out)


def _encode(d: Dockerfile) -> list[Any]:
    return [
        [[s.index, s.name, s.base, s.platform, s.line] for s in d.stages],
        [[[u.reference, u.how, u.stage, u.line] for u in uses] for uses in d.uses],
        [sorted(n) for n in d.needs],
        [dict(labels) for labels in d.stage_labels],
        d.escape,
    ]


def _decode(v: Any) -> Dockerfile:
    """The Dockerfile :func:`_encode` wrote as ``v``; ValueError or TypeError when ``v`` is
    not one (a damaged file)."""
    stages, uses, needs, labels, escape = v
    if not isinstance(escape, str) or not all(isinstance(x, dict) for x in labels):
        raise ValueError("not a kept Dockerfile")
    return Dockerfile(
        stages=tuple(Stage(*s) for s in stages),
        uses=tuple(tuple(ImageUse(*u) for u in us) for us in uses),
        needs=tuple(frozenset(n) for n in needs),
        stage_labels=tuple(labels),
        escape=escape,
    )
