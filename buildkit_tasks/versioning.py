"""The project version from git (through dunamai) and the files stamped with it.

On tag ``v2.3.0`` the version is ``2.3.0``; N commits past it, ``2.3.1.devN+<commit>``; a dirty
work tree adds ``.dirty`` (``+dirty`` on a tag). Images are tagged with a Docker-safe form
(``+`` becomes ``-``) and charts get a SemVer form (``2.3.1-pre.N+<commit>``). Without git the
version comes from a ``VERSION`` file, then ``[project].version`` of ``pyproject.toml``, then
``0.0.0``. Release tags match ``version.tag_pattern`` (default ``v*``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import Settings, read_pyproject
from .console import emit
from .engines import git
from .errors import ConfigError
from .fsutil import write_text_atomic

_DOCKER_TAG_BAD = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class VersionInfo:
    """Version facts for one build. ``version`` is PEP 440; ``build_date`` is ISO 8601 UTC
    (``SOURCE_DATE_EPOCH`` when set, else now); ``commit`` is the full hash or None without git."""

    version: str
    docker_tag: str
    chart_version: str
    commit: str | None
    branch: str | None
    dirty: bool
    distance: int
    build_date: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def docker_tag(version: str) -> str:
    """A Docker-safe tag for ``version``: ``[A-Za-z0-9_.-]``, at most 128 characters."""
    tag = _DOCKER_TAG_BAD.sub("-", version).lstrip(".-") or "latest"
    return tag[:128]


def build_date() -> str:
    """``SOURCE_DATE_EPOCH`` (seconds) or now, as ``YYYY-MM-DDTHH:MM:SSZ``."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (
        dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc)
        if epoch and epoch.isdigit()
        else dt.datetime.now(dt.timezone.utc)
    )
    return when.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def tag_regex(tag_pattern: str) -> str:
    """A dunamai tag pattern (regex with a ``base`` group) from a glob like ``api-v*``: the
    text before ``*`` is a literal prefix and ``*`` a PEP 440 / SemVer version."""
    prefix = tag_pattern[: tag_pattern.index("*")]
    return (
        "^" + re.escape(prefix) + r"((?P<epoch>\d+)!)?(?P<base>\d+(\.\d+)*)"
        r"([-._]?((?P<stage>[a-zA-Z]+)[-._]?(?P<revision>\d+)?))?"
        r"(\+(?P<tagged_metadata>.+))?$"
    )


def _shallow_warning(root: Path) -> None:
    if git.line(root, "rev-parse", "--is-shallow-repository") == "true":
        emit(
            f"version: warning: {root} is a shallow clone; tags or history may be missing, so "
            "the version is a best effort (git fetch --unshallow --tags for an exact one)",
            err=True,
        )


def _make(
    base: str,
    stage: str | None,
    revision: int | None,
    distance: int,
    commit: str | None,
    dirty: bool,
    branch: str | None,
    dev_style: str,
) -> VersionInfo:
    from dunamai import Style, Version

    short = Version(
        base,
        stage=(stage, revision) if stage else None,
        distance=distance,
        commit=(commit or "")[:7] or None,
        dirty=dirty,
        branch=branch,
    )
    bump = dev_style == "bump"
    pep440 = short.serialize(bump=bump, dirty=True)
    return VersionInfo(
        version=pep440,
        docker_tag=docker_tag(pep440),
        chart_version=short.serialize(style=Style.SemVer, bump=bump, dirty=True),
        commit=commit,
        branch=branch,
        dirty=dirty,
        distance=distance,
        build_date=build_date(),
    )


def detect(root: Path, tag_pattern: str = "v*", dev_style: str = "bump") -> VersionInfo:
    """The version of the project at ``root`` from git tags matching ``tag_pattern`` (config
    ``version.tag_pattern``). Without git: ``VERSION`` file, then ``[project].version``, then
    ``0.0.0``. A shallow clone gives a warning on stderr and a best-effort version, never an
    error. Tasks take versions from :func:`buildplan.versions` (asked once per run)."""
    from dunamai import Version

    if git.line(root, "rev-parse", "--git-dir") is None:
        return _without_git(root)
    _shallow_warning(root)
    try:
        v = Version.from_git(path=root, full_commit=True, pattern=tag_regex(tag_pattern))
    except Exception:  # dunamai raises RuntimeError on odd repositories (no commits...)
        return _without_git(root)
    return _make(
        v.base, v.stage, v.revision, v.distance, v.commit, bool(v.dirty), v.branch, dev_style
    )


def for_paths(
    root: Path, paths: tuple[str, ...], tag_pattern: str = "v*", dev_style: str = "bump"
) -> VersionInfo:
    """chartpress-style: the version of the last commit touching ``paths`` (relative to
    ``root``): the newest ``tag_pattern`` tag reachable from that commit, the commits from it
    to that commit, and dirty when those paths have uncommitted changes. Falls back to
    :func:`detect` when the paths were never committed or git is missing."""
    if git.line(root, "rev-parse", "--git-dir") is None:
        return detect(root, tag_pattern, dev_style)
    commit = git.line(root, "log", "-1", "--format=%H", "--", *paths)
    if not commit:
        return detect(root, tag_pattern, dev_style)
    tag = git.line(root, "describe", "--tags", "--abbrev=0", "--match", tag_pattern, commit)
    base, stage, revision = "0.0.0", None, None
    if tag:
        m = re.match(tag_regex(tag_pattern), tag)
        if m:
            base, stage = m["base"], m["stage"]
            revision = int(m["revision"]) if m["revision"] else None
        distance = int(git.line(root, "rev-list", "--count", f"{tag}..{commit}") or 0)
    else:
        distance = int(git.line(root, "rev-list", "--count", commit) or 0)
    dirty = bool(git.line(root, "status", "--porcelain", "--untracked-files=no", "--", *paths))
    branch = git.line(root, "rev-parse", "--abbrev-ref", "HEAD")
    return _make(base, stage, revision, distance, commit, dirty, branch, dev_style)


def _without_git(root: Path) -> VersionInfo:
    version_file = root / "VERSION"
    text = version_file.read_text(encoding="utf-8").strip() if version_file.is_file() else ""
    version = text or str(read_pyproject(root).get("project", {}).get("version") or "0.0.0")
    return VersionInfo(
        version=version,
        docker_tag=docker_tag(version),
        chart_version=version,
        commit=None,
        branch=None,
        dirty=False,
        distance=0,
        build_date=build_date(),
    )


def render(template_text: str, info: VersionInfo, source: str) -> str:
    """Render a Jinja2 ``template_text`` with the fields of ``info`` as variables.

    Raises ConfigError naming ``source`` on a template error.
    """
    from . import templating

    return templating.render(template_text, info.as_dict(), source)


def stamp(settings: Settings, info: VersionInfo) -> list[Path]:
    """Render every ``[tool.buildkit.version] files`` entry into ``output_dir``.

    Returns the written paths. Each file is written atomically.
    """
    from . import templating

    written = []
    for vf in settings.version_files:
        if vf.template is None:
            text, source = templating.builtin("version.json.j2"), "built-in version.json.j2"
        else:
            text, source = vf.template.read_text(encoding="utf-8"), str(vf.template)
        dest = (settings.output_dir / vf.path).resolve()
        if not dest.is_relative_to(settings.output_dir.resolve()):
            raise ConfigError(
                f"{settings.root / 'pyproject.toml'}: [tool.buildkit.version] files: "
                f"path {vf.path!r} must stay inside output_dir"
            )
        write_text_atomic(dest, render(text, info, source))
        written.append(dest)
    return written
