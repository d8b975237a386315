"""A label of local images by image ID: the input key each image carries, kept once known.

An image ID is a content digest (with the containerd store: of the image's index or manifest,
which names its config, which holds the labels), so the labels an ID stands for never change:
what is once known of an ID holds for good. It is known from the engine's image list, or from
the build that made the image (which set the label itself: ``--label`` wins over any
``LABEL`` in the Dockerfile). Which ID a tag names now is always asked afresh (see
:mod:`.engines.containerd`).

Kept as ``images/<hex>.json`` in :func:`~.fsutil.cache_home`, one label per image (the one
asked about); best effort: an unreadable or unwritable cache only means the engine is asked.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .fsutil import cache_home

_ID = re.compile(r"sha256:([0-9a-f]{64})")


def directory() -> Path:
    """Where image labels are kept: ``images`` in the cache home."""
    return cache_home() / "images"


def _path(image_id: str) -> Path | None:
    m = _ID.fullmatch(image_id)
    return directory() / f"{m.group(1)}.json" if m else None


def recall(image_id: str, label: str) -> tuple[bool, str | None]:
    """``(known, value)`` of label ``label`` on image ``image_id`` (``sha256:<hex>``): value
    None when known to be absent; ``(False, None)`` when never kept (or unreadable, or kept
    for another label, or not an ID)."""
    path = _path(image_id)
    if path is None:
        return False, None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return False, None
    if not isinstance(data, dict) or data.get("id") != image_id or data.get("label") != label:
        return False, None
    value = data.get("value")
    return (True, value) if value is None or isinstance(value, str) else (False, None)


def remember(image_id: str, label: str, value: str | None) -> None:
    """Keep that image ``image_id`` carries ``label`` = ``value`` (None: not at all): written
    to a temp file, then renamed; nothing when already kept, not an ID, or not writable."""
    path = _path(image_id)
    if path is None or recall(image_id, label)[0]:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"id": image_id, "label": label, "value": value}))
        os.replace(tmp, path)
    except OSError:
        pass
