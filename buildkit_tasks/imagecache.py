"""Labels of local images by image ID, as the engine reported them.

An image ID is a content digest (with the containerd store: of the image's index or manifest,
which names its config, which holds the labels), so the labels an ID stands for never change:
what the engine once said about an ID can be reused without asking it again. Which ID a tag
names now is always asked afresh (see :mod:`.engines.containerd`).

Kept as ``images/<hex>.json`` in :func:`~.fsutil.cache_home`; best effort: an unreadable or
unwritable cache only means the engine is asked.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from .fsutil import cache_home

_ID = re.compile(r"sha256:([0-9a-f]{64})")


def directory() -> Path:
    """Where image labels are kept: ``images`` in the cache home."""
    return cache_home() / "images"


def _path(image_id: str) -> Path | None:
    m = _ID.fullmatch(image_id)
    return directory() / f"{m.group(1)}.json" if m else None


def recall(image_id: str) -> dict[str, str] | None:
    """The labels kept for ``image_id`` (``sha256:<hex>``), or None (never kept, unreadable,
    not an ID)."""
    path = _path(image_id)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, dict) or data.get("id") != image_id:
        return None
    return {str(k): str(v) for k, v in labels.items()}


def remember(image_id: str, labels: Mapping[str, str]) -> None:
    """Keep ``labels`` (as the engine listed them) for ``image_id``: written to a temp file,
    then renamed; nothing when already kept, not an ID, or the cache is not writable."""
    path = _path(image_id)
    if path is None or path.is_file():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"id": image_id, "labels": dict(labels)}, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass
