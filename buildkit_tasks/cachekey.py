"""Input keys: a hash of everything that decides an image's content.

An image's key covers its build context as Docker sees it (``.dockerignore`` honoured, through
the ``docker`` SDK's own pattern matcher), its Dockerfile, build args, target, platforms and the
keys of the project images it builds on. It is stored on the image as the label
:data:`KEY_LABEL`; an image whose inputs have not changed is found by it and not rebuilt.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ImageSpec
from .errors import ConfigError
from .fsutil import cache_home, keep_cache_text, sha256_file

KEY_LABEL = "dev.buildkit-tasks.input-key"
SCHEMA = "buildkit-tasks/key/v1"


def dockerignore_patterns(context: Path, dockerfile: Path) -> list[str]:
    """Patterns from ``<Dockerfile>.dockerignore`` when present (BuildKit's rule), else from
    ``<context>/.dockerignore``; comments and blank lines dropped."""
    for candidate in (Path(f"{dockerfile}.dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            lines = candidate.read_text(encoding="utf-8", errors="replace").splitlines()
            return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    return []


def context_entries(context: Path, dockerfile: Path, remember: bool = True) -> dict[str, str]:
    """Every path Docker would send from ``context`` (``.dockerignore`` honoured), in order:
    relative path -> ``F <exec bits> <sha256>``, ``L <symlink target>`` or ``D``. The listing
    and each file's sha256 are taken from :mod:`.filedigests` while the statuses they came
    from are unchanged (``remember`` false: the context is listed and every file read).
    Raises ConfigError on unreadable files."""
    return _context_entries(context, dockerfile, remember, False)


def remembered_context_entries(context: Path, dockerfile: Path) -> dict[str, str] | None:
    """:func:`context_entries` when everything it needs is remembered and unchanged (only
    statuses checked: cheap enough for one thread to do a whole graph's contexts); None when
    a directory would have to be listed or a file read. Raises ConfigError as it does."""
    from .filedigests import NotRemembered

    try:
        return _context_entries(context, dockerfile, True, True)
    except NotRemembered:
        return None


def _context_entries(
    context: Path, dockerfile: Path, remember: bool, remembered_only: bool
) -> dict[str, str]:
    from .filedigests import ContextDigests

    patterns = dockerignore_patterns(context, dockerfile)
    try:
        rel_df = dockerfile.relative_to(context).as_posix()
    except ValueError:
        rel_df = None
    view = "\n".join([f"dockerfile {rel_df}", *patterns])
    digests = ContextDigests(context, view, remembered_only) if remember else None
    walk = functools.partial(docker_listing, context, patterns, rel_df)
    for retry in (False, True):
        entries = {}
        for rel in digests.listing(walk) if digests else sorted(walk()[0]):
            full = context / rel
            try:
                st = full.lstat()
                if stat.S_ISLNK(st.st_mode):
                    entries[rel] = f"L {os.readlink(full)}"
                elif stat.S_ISDIR(st.st_mode):
                    entries[rel] = "D"
                else:
                    sha = digests.sha256(rel, full, st) if digests else sha256_file(full)
                    entries[rel] = f"F {st.st_mode & 0o111:o} {sha}"
            except FileNotFoundError as exc:
                if digests is None or retry:  # else gone since a remembered listing: list anew
                    msg = f"{full}: cannot read build context file: {exc.strerror}"
                    raise ConfigError(msg) from None
                digests.forget_listing()
                break
            except OSError as exc:
                msg = f"{full}: cannot read build context file: {exc.strerror}"
                raise ConfigError(msg) from None
        else:
            break
    if digests is not None:
        digests.save()
    return entries


def docker_listing(
    context: Path, patterns: list[str], dockerfile: str | None
) -> tuple[set[str], set[str]]:
    """``(paths, directories read)``: what the ``docker`` SDK's ``.dockerignore`` matcher
    sends from ``context`` (relative paths; ``dockerfile``, relative to the context or None,
    is always sent), and every directory its walk lists: the context, each directory it
    sends, and each excluded one it still enters because an exception (``!pattern``, its own
    ``!<dockerfile>`` and ``!.dockerignore`` included) starts with its path (the SDK's rule,
    from moby's fileutils). Raises OSError when the context cannot be listed."""
    from docker.utils.build import PatternMatcher, exclude_paths

    paths = exclude_paths(str(context), list(patterns), dockerfile=dockerfile)
    matcher = PatternMatcher([*patterns, f"!{dockerfile or 'Dockerfile'}"])
    entered = {
        e.cleaned_pattern[:i]
        for e in matcher.patterns
        if e.exclusion
        for i in range(1, len(e.cleaned_pattern) + 1)
    }
    directories = {""} | {
        p for p in paths | entered if not os.path.islink(context / p) and (context / p).is_dir()
    }
    # a prefix such as "." (of "!.dockerignore") or "sub/." names a directory already there
    return paths, {"" if d == "." else d for d in map(os.path.normpath, directories)}


def entries_digest(entries: Mapping[str, str]) -> str:
    """The context digest of :func:`context_entries`: sha256 over ``<kind> <path> <rest>``."""
    h = hashlib.sha256()
    for rel in sorted(entries):
        kind, _, rest = entries[rel].partition(" ")
        entry = f"{kind} {rel} {rest}" if rest else f"{kind} {rel}"
        h.update(entry.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


def context_digest(context: Path, dockerfile: Path) -> str:
    """sha256 over every path Docker would send from ``context``: relative path, type,
    executable bit, and content (or symlink target). Raises ConfigError on unreadable files."""
    return entries_digest(context_entries(context, dockerfile))


@dataclass(frozen=True)
class InputManifest:
    """What an input key is made from: the build context's entries (path -> kind, exec bits,
    sha256), the Dockerfile's sha256, build args, target, platforms, and the keys of the
    project images it builds on. Kept beside the key (:func:`record`) so that a later run can
    say what changed (:func:`changes`)."""

    name: str
    context: Mapping[str, str]
    dockerfile: str
    build_args: Mapping[str, str]
    target: str | None
    platforms: tuple[str, ...]
    dependencies: Mapping[str, str]

    def key(self) -> str:
        """The input key (sha256 hex) these inputs make."""
        payload = {
            "schema": SCHEMA,
            "name": self.name,
            "context": entries_digest(self.context),
            "dockerfile": self.dockerfile,
            "build_args": dict(sorted(self.build_args.items())),
            "target": self.target,
            "platforms": sorted(self.platforms),
            "dependencies": dict(sorted(self.dependencies.items())),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **dataclasses.asdict(self), "platforms": list(self.platforms)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputManifest:
        """Raises ValueError/KeyError/TypeError for data that is not a manifest."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} manifest")
        return cls(
            name=str(data["name"]),
            context=dict(data["context"]),
            dockerfile=str(data["dockerfile"]),
            build_args=dict(data["build_args"]),
            target=data["target"],
            platforms=tuple(data["platforms"]),
            dependencies=dict(data["dependencies"]),
        )


# extra_build_args count as inputs, recorded beside the build args (no ARG can be named so)
EXTRA_KEY = "extra_build_args:"


def manifest(
    spec: ImageSpec,
    platforms: Iterable[str],
    dependency_keys: Mapping[str, str],
    context: Mapping[str, str] | None = None,
) -> InputManifest:
    """The inputs of ``spec`` built for ``platforms`` on dependencies with the given keys;
    ``context`` is :func:`context_entries` when already computed."""
    return InputManifest(
        name=spec.name,
        context=context if context is not None else context_entries(spec.context, spec.dockerfile),
        dockerfile=sha256_file(spec.dockerfile),
        build_args={
            **dict(sorted(spec.build_args.items())),
            **({EXTRA_KEY: " ".join(spec.extra_build_args)} if spec.extra_build_args else {}),
        },
        target=spec.target,
        platforms=tuple(sorted(platforms)),
        dependencies=dict(sorted(dependency_keys.items())),
    )


def image_key(spec: ImageSpec, platforms: Iterable[str], dependency_keys: Mapping[str, str]) -> str:
    """The input key of ``spec`` built for ``platforms`` on dependencies with the given keys."""
    return manifest(spec, platforms, dependency_keys).key()


def changes(old: InputManifest, new: InputManifest, most: int = 5) -> list[str]:
    """What differs from ``old`` to ``new``, one phrase per kind of change, naming at most
    ``most`` files per phrase: ``changed work.sh``, ``Dockerfile changed``, ``build arg
    GREETING changed``, ``base image base changed``..."""
    out = []

    def is_dockerfile(m: InputManifest, path: str) -> bool:  # the Dockerfile is in its context
        return m.context.get(path, "").endswith(" " + m.dockerfile)

    changed = [
        p
        for p in new.context
        if p in old.context
        and old.context[p] != new.context[p]
        and not (is_dockerfile(old, p) and is_dockerfile(new, p))
    ]
    for verb, paths in (
        ("changed", changed),
        ("added", [p for p in new.context if p not in old.context]),
        ("removed", [p for p in old.context if p not in new.context]),
    ):
        if paths:
            more = f" and {len(paths) - most} more" if len(paths) > most else ""
            out.append(f"{verb} {', '.join(paths[:most])}{more}")
    if old.dockerfile != new.dockerfile:
        out.append("Dockerfile changed")
    for arg in sorted(set(old.build_args) | set(new.build_args)):
        if old.build_args.get(arg) != new.build_args.get(arg):
            what = (
                "added"
                if arg not in old.build_args
                else "removed"
                if arg not in new.build_args
                else "changed"
            )
            out.append(f"build arg {arg} {what}")
    if old.target != new.target:
        out.append(f"target {old.target or '(last stage)'} -> {new.target or '(last stage)'}")
    if old.platforms != new.platforms:
        out.append(
            f"platforms {', '.join(old.platforms) or '-'} -> {', '.join(new.platforms) or '-'}"
        )
    for dep in sorted(set(old.dependencies) | set(new.dependencies)):
        if dep not in old.dependencies:
            out.append(f"now builds on image {dep}")
        elif dep not in new.dependencies:
            out.append(f"no longer builds on image {dep}")
        elif old.dependencies[dep] != new.dependencies[dep]:
            out.append(f"base image {dep} changed")
    return out


def manifests_dir() -> Path:
    """Where input manifests are kept: ``inputs`` in :func:`~.fsutil.cache_home`
    (``~/.cache/buildkit-tasks/inputs``; env ``BUILDKIT_CACHE_HOME``, ``XDG_CACHE_HOME``)."""
    return cache_home() / "inputs"


def record(m: InputManifest, key: str | None = None) -> bool:
    """Keep ``m`` as ``<manifests_dir>/<key>.json`` (written to a temp file, then renamed).
    Best effort: an unwritable cache only means later runs cannot say what changed. True when
    the key was not recorded here before (inputs this machine has not planned yet)."""
    key = key or m.key()
    path = manifests_dir() / f"{key}.json"
    if path.is_file():
        return False
    keep_cache_text(path, json.dumps(m.as_dict(), sort_keys=True))
    return True


def recall(key: str) -> InputManifest | None:
    """The manifest recorded for ``key``, or None (never recorded here, or unreadable)."""
    try:
        data = json.loads((manifests_dir() / f"{key}.json").read_text())
        return InputManifest.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
