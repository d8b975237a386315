"""A label of local images by image ID: the input key each image carries, kept once known.

An image ID is a content digest (with the containerd store: of the image's index or manifest,
which names its config, which holds the labels), so the labels an ID stands for never change:
what is once known of an ID holds for good. It is known from the engine's image list, or from
the build that made the image (which set the label itself: ``--label`` wins over any
``LABEL`` in the Dockerfile). Which ID a tag names now is always asked afresh (see
:mod:`.engines.containerd`); what each tag named when last asked is kept too, but only as a
guess for containerd to confirm (:func:`tag_targets`), which it does far more cheaply than it
lists.

Kept as ``images/<hex>.json`` in :func:`~.fsutil.cache_home`, one label per image (the one
asked about), ``tags/<hash of the scope>.json``: ``{"scope": TEXT, "targets": {name:
digest}}``, and ``engines/<hash>``: the text naming an engine run found to report the image
IDs its containerd does (checked once per engine run, not once per process), and
``engines/<hash>.platform``: ``{"instance": TEXT, "platform": "os/arch"}``, that engine
run's own platform, and ``aliases/<hash of the scope>.json``: ``{"scope": TEXT, "aliases":
[reference, ...]}``, the aliases a project made in an engine (:func:`kept_aliases`); best
effort: an unreadable or unwritable cache only means the engine is asked.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .fsutil import cache_home, keep_cache_text

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
    keep_cache_text(path, json.dumps({"id": image_id, "label": label, "value": value}))


def _tags_path(scope: str) -> Path:
    return cache_home() / "tags" / f"{hashlib.sha256(scope.encode()).hexdigest()[:32]}.json"


def tag_targets(scope: str) -> dict[str, str]:
    """What each tag named when last asked within ``scope`` (text naming the store and the
    set of tags asked about, e.g. the containerd socket and the repositories): ``{name:
    digest}``, to be confirmed, never trusted; empty when nothing (readable) is kept."""
    try:
        data = json.loads(_tags_path(scope).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("scope") != scope:
        return {}
    targets = data.get("targets")
    if not isinstance(targets, dict):
        return {}
    return {n: d for n, d in targets.items() if isinstance(d, str) and _ID.fullmatch(d)}


def keep_tag_targets(scope: str, targets: Mapping[str, str]) -> None:
    """Keep ``targets`` (``{name: digest}``, replacing what ``scope`` held) for
    :func:`tag_targets`: written to a temp file, then renamed; nothing when unchanged or not
    writable."""
    if tag_targets(scope) == dict(targets):
        return
    data = {"scope": scope, "targets": dict(sorted(targets.items()))}
    keep_cache_text(_tags_path(scope), json.dumps(data))


def _store_path(instance: str) -> Path:
    return cache_home() / "engines" / hashlib.sha256(instance.encode()).hexdigest()[:32]


def confirmed_store(instance: str) -> bool:
    """Whether the engine run ``instance`` (:func:`~.engines.containerd.engine_instance`) was
    found reporting the image IDs its containerd does (:func:`keep_confirmed_store`)."""
    try:
        return _store_path(instance).read_text("utf-8") == instance
    except OSError:
        return False


def keep_confirmed_store(instance: str) -> None:
    """Keep that the engine run ``instance`` reports the image IDs its containerd does:
    written to a temp file, then renamed; nothing when not writable."""
    keep_cache_text(_store_path(instance), instance)


def engine_platform(instance: str) -> str | None:
    """The platform (``os/arch``) kept for the engine run ``instance``
    (:func:`keep_engine_platform`), or None."""
    try:
        data = json.loads(_store_path(instance).with_suffix(".platform").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("instance") != instance:
        return None
    platform = data.get("platform")
    return platform if isinstance(platform, str) and platform.count("/") == 1 else None


def keep_engine_platform(instance: str, platform: str) -> None:
    """Keep the engine run ``instance``'s own platform (it cannot change while that run
    lasts): written to a temp file, then renamed; nothing when not writable."""
    text = json.dumps({"instance": instance, "platform": platform})
    keep_cache_text(_store_path(instance).with_suffix(".platform"), text)


def _aliases_path(scope: str) -> Path:
    return cache_home() / "aliases" / f"{hashlib.sha256(scope.encode()).hexdigest()[:32]}.json"


def kept_aliases(scope: str) -> list[str]:
    """The aliases (:func:`~.engines.docker.alias_reference`) runs within ``scope`` (text
    naming the engine and the project) made or used and did not remove
    (:func:`keep_aliases`): what a later run removes once their input keys are no longer
    the images' own. Empty when nothing (readable) is kept."""
    try:
        data = json.loads(_aliases_path(scope).read_text("utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or data.get("scope") != scope:
        return []
    kept = data.get("aliases")
    return [a for a in kept if isinstance(a, str)] if isinstance(kept, list) else []


def keep_aliases(scope: str, aliases: Iterable[str]) -> None:
    """Keep ``aliases`` (replacing what ``scope`` held) for :func:`kept_aliases`: written to
    a temp file, then renamed; nothing when unchanged or not writable."""
    wanted = sorted(set(aliases))
    if kept_aliases(scope) == wanted:
        return
    keep_cache_text(_aliases_path(scope), json.dumps({"scope": scope, "aliases": wanted}))
