"""Versions from git, in two schemes (``[tool.buildkit.version] scheme``), and the files
stamped with them.

``pep440`` (default, through dunamai): on tag ``v2.3.0`` the version is ``2.3.0``; N commits
past it, ``2.3.1.devN+<commit>``; a dirty work tree adds ``.dirty`` (``+dirty`` on a tag).
Images are tagged with a Docker-safe form (``+`` becomes ``-``; on the release commit itself
the tag's own text, so ``v4.0.0-beta.1`` tags images ``4.0.0-beta.1``) and charts get a SemVer
form (``2.3.1-pre.N+<commit>``). Release tags match ``version.tag_pattern`` (default ``v*``).

``chartpress``: versions exactly as chartpress 2.x makes them (the :class:`Chartpress` rules):
``<base>-0.dev.git.<n>.h<sha>`` (``<base>.git.<n>.h<sha>`` when the base is a prerelease),
the tag itself on a tagged commit, ``base_version`` as chartpress's ``baseVersion``.

Without git the version comes from a ``VERSION`` file, then ``[project].version`` of
``pyproject.toml``, then ``0.0.0``. A tag that matches ``tag_pattern`` but holds no version
is an error, never a silent ``0.0.0``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import Settings, read_pyproject, semver_ok
from .console import emit
from .engines import git
from .errors import ConfigError
from .fsutil import write_text_atomic

_DOCKER_TAG_BAD = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class VersionInfo:
    """Version facts for one build. ``version`` is PEP 440 (scheme ``chartpress``: the
    chartpress version, which is also ``docker_tag``); ``build_date`` is ISO 8601 UTC
    (``SOURCE_DATE_EPOCH`` when set, else now); ``commit`` is the full hash or None without git."""

    version: str
    docker_tag: str
    chart_version: str
    commit: str | None
    branch: str | None
    dirty: bool
    distance: int
    build_date: str
    short_commit: str | None = None  # git's abbreviation of ``commit`` ({LAST_COMMIT})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VersionInfo:
        """Back from :meth:`as_dict` (unknown keys ignored). Raises TypeError when a field
        is missing."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def docker_tag(version: str) -> str:
    """A Docker-safe tag for ``version``: ``[A-Za-z0-9_.-]``, at most 128 characters."""
    tag = _DOCKER_TAG_BAD.sub("-", version).lstrip(".-") or "latest"
    return tag[:128]


def build_date() -> str:
    """``SOURCE_DATE_EPOCH`` (seconds) or now, as ``YYYY-MM-DDTHH:MM:SSZ``."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return iso_date(int(epoch) if epoch and epoch.isdigit() else None)


def iso_date(epoch: int | None = None) -> str:
    """``epoch`` (seconds since 1970; None: now) as ``YYYY-MM-DDTHH:MM:SSZ``, UTC."""
    when = (
        dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
        if epoch is not None
        else dt.datetime.now(dt.timezone.utc)
    )
    return when.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def source_date_epoch(root: Path) -> int | None:
    """Seconds since 1970 a reproducible artifact is dated: env ``SOURCE_DATE_EPOCH`` when it
    is a whole number, else the time of the commit checked out at ``root``, else None."""
    env = os.environ.get("SOURCE_DATE_EPOCH", "")
    if env.isdigit():
        return int(env)
    out = git.line(root, "log", "-1", "--format=%ct") or ""
    return int(out) if out.isdigit() else None


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
    release_text: str | None = None,
) -> VersionInfo:
    """``release_text``: the version as the release tag writes it (prefix removed), used as
    the Docker tag on the release commit itself."""
    from dunamai import Style, Version

    def at(numbers: str) -> Version:
        return Version(
            numbers,
            stage=(stage, revision) if stage else None,
            distance=distance,
            commit=(commit or "")[:7] or None,
            dirty=dirty,
            branch=branch,
        )

    bump = dev_style == "bump"
    try:
        pep440 = at(base).serialize(bump=bump, dirty=True)
        chart_version = at(semver_numbers(base)).serialize(
            style=Style.SemVer, bump=bump, dirty=True
        )
    except ValueError as exc:
        raise ConfigError(f"version {base!r} from git: {exc}") from None
    released = release_text is not None and distance == 0 and not dirty
    return VersionInfo(
        version=pep440,
        docker_tag=docker_tag(release_text if released and release_text else pep440),
        chart_version=chart_version,
        commit=commit,
        branch=branch,
        dirty=dirty,
        distance=distance,
        build_date=build_date(),
        short_commit=(commit or "")[:7] or None,
    )


def _nearest_tag(root: Path, tag_pattern: str, ref: str = "HEAD") -> str | None:
    """The newest tag matching the glob ``tag_pattern`` reachable from ``ref``, or None."""
    return git.line(root, "describe", "--tags", "--abbrev=0", "--match", tag_pattern, ref)


def _release(tag: str, tag_pattern: str) -> re.Match[str]:
    """The parts of release tag ``tag``. Raises ConfigError when it matches ``tag_pattern``
    but holds no version (which would otherwise silently give 0.0.0)."""
    m = re.match(tag_regex(tag_pattern), tag)
    if m is None:
        raise ConfigError(
            f"git tag {tag!r} matches [tool.buildkit.version] tag_pattern {tag_pattern!r} but "
            "holds no version (expected e.g. 2.3.0, 2.3.0rc1, 4.0.0-beta.1 after the prefix); "
            "delete or rename the tag, or narrow tag_pattern"
        )
    return m


def detect(root: Path, tag_pattern: str = "v*", dev_style: str = "bump") -> VersionInfo:
    """The version of the project at ``root`` from git tags matching ``tag_pattern`` (config
    ``version.tag_pattern``). Without git: ``VERSION`` file, then ``[project].version``, then
    ``0.0.0``. A shallow clone gives a warning on stderr and a best-effort version, never an
    error. Tasks take versions from :func:`buildplan.versions` (asked once per run)."""
    if git.line(root, "rev-parse", "--git-dir") is None:
        return _without_git(root)
    from dunamai import Version  # imported only here: its import reads every installed
    # distribution's metadata for its own version (~50 ms)

    _shallow_warning(root)
    tag = _nearest_tag(root, tag_pattern)
    if tag is not None:
        _release(tag, tag_pattern)
    try:
        v = Version.from_git(path=root, full_commit=True, pattern=tag_regex(tag_pattern))
    except Exception:  # dunamai raises RuntimeError on odd repositories (no commits...)
        return _without_git(root)
    text = tag[len(_prefix(tag_pattern)) :] if tag and v.distance == 0 else None
    return _make(
        v.base,
        v.stage,
        v.revision,
        v.distance,
        v.commit,
        bool(v.dirty),
        v.branch,
        dev_style,
        text,
    )


def semver_numbers(base: str) -> str:
    """``base`` as SemVer's MAJOR.MINOR.PATCH, for chart versions: ``1.2`` -> ``1.2.0``,
    ``01.2.3`` -> ``1.2.3`` (SemVer forbids leading zeros; PEP 440 drops them too).
    Raises ConfigError for more than three numbers."""
    parts = base.split(".")
    if not all(p.isdigit() for p in parts):
        return base
    if len(parts) > 3:
        raise ConfigError(
            f"version {base!r} from git has more than three numbers; chart versions are "
            "SemVer (MAJOR.MINOR.PATCH): tag releases as e.g. v1.2.3"
        )
    return ".".join([str(int(p)) for p in parts] + ["0"] * (3 - len(parts)))


def _prefix(tag_pattern: str) -> str:
    return tag_pattern[: tag_pattern.index("*")]


def for_paths(
    root: Path, paths: tuple[str, ...], tag_pattern: str = "v*", dev_style: str = "bump"
) -> VersionInfo:
    """The version of the last commit touching ``paths`` (relative to ``root``), with
    chartpress's tagged-commit rule: when the newest release tag reachable from ``HEAD`` is
    not behind that commit, the tagged commit counts instead (a release is the whole tree at
    the tag, whatever paths the release commit touched). From that commit: the newest
    ``tag_pattern`` tag reachable, the commits since it, and dirty when ``paths`` have
    uncommitted changes. Falls back to :func:`detect` when the paths were never committed or
    git is missing. Raises ConfigError for a matching tag that holds no version."""
    if git.line(root, "rev-parse", "--git-dir") is None:
        return detect(root, tag_pattern, dev_style)
    commit = _latest(root, paths, _nearest_tag(root, tag_pattern))
    if not commit:
        return detect(root, tag_pattern, dev_style)
    tag = _nearest_tag(root, tag_pattern, commit)
    base, stage, revision, text = "0.0.0", None, None, None
    if tag:
        m = _release(tag, tag_pattern)
        base, stage = m["base"], m["stage"]
        revision = int(m["revision"]) if m["revision"] else None
        distance = int(git.line(root, "rev-list", "--count", f"{tag}..{commit}") or 0)
        text = tag[len(_prefix(tag_pattern)) :]
    else:
        distance = int(git.line(root, "rev-list", "--count", commit) or 0)
    dirty = bool(git.line(root, "status", "--porcelain", "--untracked-files=no", "--", *paths))
    branch = git.line(root, "rev-parse", "--abbrev-ref", "HEAD")
    return _make(base, stage, revision, distance, commit, dirty, branch, dev_style, text)


def _latest(root: Path, paths: tuple[str, ...], head_tag: str | None) -> str | None:
    """chartpress's "latest commit tagged or modifying paths" (full hash): the last commit
    touching ``paths`` (``HEAD`` for no paths), unless ``head_tag``'s commit is not its
    ancestor, then that one."""
    commit = git.line(root, "log", "-1", "--format=%H", *_pathspec(paths))
    if head_tag is None:
        return commit
    tagged = git.line(root, "rev-list", "-n", "1", head_tag)
    if tagged is None:
        return commit
    if commit is not None and git.ok(root, "merge-base", "--is-ancestor", tagged, commit):
        return commit
    return tagged


def _pathspec(paths: tuple[str, ...]) -> tuple[str, ...]:
    return ("--", *paths) if paths else ()


# -- the chartpress scheme --------------------------------------------------------------------

DEV_BASE = "0.0.1-0.dev"  # chartpress's base without any tag


def _describe(root: Path, tag_pattern: str, ref: str) -> tuple[str | None, int]:
    """``git describe --tags --long`` of ``ref``: (newest matching tag, commits since it), or
    (None, commits up to ``ref``) without one."""
    out = git.line(root, "describe", "--tags", "--long", "--match", tag_pattern, ref)
    if out:
        tag, since, _sha = out.rsplit("-", 2)
        return tag, int(since)
    return None, int(git.line(root, "rev-list", "--count", ref) or 0)


def _semver_tag(tag: str, tag_pattern: str) -> str:
    """The version a release tag gives in the chartpress scheme: the tag without the pattern's
    prefix, a SemVer 2 version (a leading ``v`` allowed, as chartpress). Raises ConfigError."""
    text = tag[len(_prefix(tag_pattern)) :]
    if not (semver_ok(text) or (text.startswith("v") and semver_ok(text[1:]))):
        raise ConfigError(
            f"git tag {tag!r} matches [tool.buildkit.version] tag_pattern {tag_pattern!r} but "
            f"{text!r} is not a SemVer version (scheme chartpress); delete or rename the tag, or "
            "narrow tag_pattern"
        )
    return text


def _numbers(version: str) -> tuple[int, int, int]:
    core = version.lstrip("v").split("-", 1)[0].split("+", 1)[0]
    major, minor, patch = core.split(".")[:3]
    return int(major), int(minor), int(patch)


class Chartpress:
    """Versions as chartpress 2.x makes them, byte for byte, for the repository at ``root`` as
    it is now: what ``HEAD`` says (its newest ``tag_pattern`` tag, the branch, a shallow clone's
    warning) is asked of git once, then :meth:`version` gives the version of any set of paths.
    ``base_version`` is chartpress's ``baseVersion``, checked here (:meth:`check_base`);
    ``long`` is chartpress's ``--long``. Raises ConfigError for a release tag that is not
    SemVer or a base version that sorts below the last tag."""

    def __init__(
        self,
        root: Path,
        tag_pattern: str = "*",
        base_version: str | None = None,
        long: bool = False,
    ) -> None:
        self.root, self.tag_pattern, self.long = root, tag_pattern, long
        self.in_git = git.line(root, "rev-parse", "--git-dir") is not None
        self.head_tag: str | None = None
        self.head_count = 0
        self.branch: str | None = None
        if self.in_git:
            _shallow_warning(root)
            self.head_tag, self.head_count = _describe(root, tag_pattern, "HEAD")
            self.branch = git.line(root, "branch", "--show-current")
        self.head_text = _semver_tag(self.head_tag, tag_pattern) if self.head_tag else None
        self.base = self.check_base(base_version) if base_version is not None else None

    def check_base(self, base_version: str) -> str:
        """chartpress's ``baseVersion`` check: ``major``/``minor``/``patch`` give the last tag
        with that field incremented (``-0.dev`` added; the tag itself when it is a
        prerelease); a release version gets ``-0.dev`` added; off a tagged commit the result
        must not sort below the last tag. Raises ConfigError naming ``base_version``."""
        text = self.head_text
        if base_version in ("major", "minor", "patch"):
            if text is None:
                return DEV_BASE
            if "-" in text:
                return text
            major, minor, patch = _numbers(text)
            bumped = {
                "major": (major + 1, 0, 0),
                "minor": (major, minor + 1, 0),
                "patch": (major, minor, patch + 1),
            }[base_version]
            return "{}.{}.{}-0.dev".format(*bumped)
        if "-" not in base_version:
            base_version = f"{base_version}-0.dev"
        if text is not None and self.head_count:
            ours, theirs = _numbers(base_version), _numbers(text)
            if ours < theirs or (ours == theirs and "-" not in text):
                raise ConfigError(
                    f"[tool.buildkit.version] base_version: {base_version} is not greater than "
                    f"the last tag {self.head_tag}; raise base_version after a release"
                )
        return base_version

    def version(self, paths: tuple[str, ...] = ()) -> VersionInfo:
        """The version chartpress gives ``paths`` (relative to ``root``; none: the whole
        tree): the latest of the last commit touching ``paths`` and the tagged commit
        (:func:`_latest`), ``n`` the commits up to it since the start of the branch, and
        ``<base>-0.dev.git.<n>.h<sha>`` (``.git.<n>.h<sha>`` when ``<base>`` already has a
        prerelease); exactly the tag on a tagged commit (unless ``long``). ``<base>`` is the
        checked ``base_version``, else the last tag, else ``0.0.1-0.dev``. ``chart_version``
        drops a leading ``v`` as chartpress does for Chart.yaml. Uncommitted changes do not
        change the version (``dirty`` records them)."""
        root = self.root
        latest = _latest(root, paths, self.head_tag) if self.in_git else None
        if latest is None:  # no git, or no commits at all
            return _without_git(root)
        # git's own abbreviation, as chartpress's `git log --pretty=%h` gives it
        short = git.line(root, "rev-parse", "--short", latest) or latest[:7]
        n = int(git.line(root, "rev-list", "--count", latest) or 0)
        tag, since = _describe(root, self.tag_pattern, latest)
        base = self.base
        if tag is not None:
            text = _semver_tag(tag, self.tag_pattern)
            if since == 0:
                base = text
                if not self.long:
                    n = 0
            if base is None:
                base = text
        if base is None:
            base = DEV_BASE
        if n > 0 or self.long:
            version = f"{base}{'.git' if '-' in base else '-0.dev.git'}.{n}.h{short}"
        else:
            version = base
        status = ("status", "--porcelain", "--untracked-files=no", *_pathspec(paths))
        return VersionInfo(
            version=version,
            docker_tag=version,
            chart_version=version[1:] if version.startswith("v") else version,
            commit=latest,
            branch=self.branch,
            dirty=bool(git.line(root, *status)),
            distance=since if tag is not None else n,
            build_date=build_date(),
            short_commit=short,
        )


def check_base_version(root: Path, base_version: str, tag_pattern: str = "*") -> str:
    """:meth:`Chartpress.check_base` for the repository at ``root`` as it is now."""
    return Chartpress(root, tag_pattern).check_base(base_version)


def chartpress_version(
    root: Path,
    paths: tuple[str, ...] = (),
    tag_pattern: str = "*",
    base_version: str | None = None,
    long: bool = False,
) -> VersionInfo:
    """:meth:`Chartpress.version` of ``paths`` (one call; for many paths make one
    :class:`Chartpress` and ask it for each)."""
    return Chartpress(root, tag_pattern, base_version, long).version(paths)


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

    Returns the written paths. Every template is rendered before anything is written, and
    each file is written atomically: a template error (ConfigError naming the template, or a
    template that is not UTF-8) leaves no file of this run behind.
    """
    from . import templating

    rendered: list[tuple[Path, str]] = []
    for vf in settings.version_files:
        if vf.template is None:
            text, source = templating.builtin("version.json.j2"), "built-in version.json.j2"
        else:
            try:
                text = vf.template.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ConfigError(f"{vf.template}: not UTF-8 text") from None
            source = str(vf.template)
        dest = (settings.output_dir / vf.path).resolve()
        if not dest.is_relative_to(settings.output_dir.resolve()):
            raise ConfigError(
                f"{settings.root / 'pyproject.toml'}: [tool.buildkit.version] files: "
                f"path {vf.path!r} must stay inside output_dir"
            )
        rendered.append((dest, render(text, info, source)))
    for dest, text in rendered:
        write_text_atomic(dest, text)
    return [dest for dest, _ in rendered]
