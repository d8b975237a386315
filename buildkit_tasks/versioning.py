"""The project version from git (through dunamai) and the files stamped with it.

On tag ``v2.3.0`` the version is ``2.3.0``; N commits past it, ``2.3.1.devN+<commit>``; a dirty
work tree adds ``.dirty`` (``+dirty`` on a tag). Images are tagged with a Docker-safe form
(``+`` becomes ``-``) and charts get a SemVer form (``2.3.1-pre.N+<commit>``). Without git the
version falls back to ``[project].version`` of ``pyproject.toml``, then ``0.0.0``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .config import Settings, read_pyproject
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


VERSION_FILE_ENV = "BUILDKIT_VERSION_FILE"


def from_file(path: Path) -> VersionInfo:
    """VersionInfo from a JSON file of its fields (what remote runs ship to a host, whose copy
    of the work tree has no git history). Raises ConfigError naming the file."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return VersionInfo(**{k: data[k] for k in VersionInfo.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} (from ${VERSION_FILE_ENV}): expected a version JSON file ({exc})"
        ) from None


def detect(root: Path) -> VersionInfo:
    """The version of the project at ``root`` from git tags (``v``-prefixed SemVer), or from
    the file named by env ``BUILDKIT_VERSION_FILE`` when set (remote runs)."""
    from dunamai import Style, Version

    if os.environ.get(VERSION_FILE_ENV):
        return from_file(Path(os.environ[VERSION_FILE_ENV]))

    try:
        v = Version.from_git(path=root, full_commit=True)
    except Exception:  # not a git checkout, or git missing: dunamai raises RuntimeError
        return _without_git(root)
    short = Version(
        v.base,
        stage=(v.stage, v.revision),
        distance=v.distance,
        commit=(v.commit or "")[:7] or None,
        dirty=v.dirty,
        branch=v.branch,
    )
    pep440 = short.serialize(bump=True, dirty=True)
    return VersionInfo(
        version=pep440,
        docker_tag=docker_tag(pep440),
        chart_version=short.serialize(style=Style.SemVer, bump=True, dirty=True),
        commit=v.commit,
        branch=v.branch,
        dirty=bool(v.dirty),
        distance=v.distance,
        build_date=build_date(),
    )


def _without_git(root: Path) -> VersionInfo:
    version = read_pyproject(root).get("project", {}).get("version") or "0.0.0"
    return VersionInfo(
        version=str(version),
        docker_tag=docker_tag(str(version)),
        chart_version=str(version),
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
    import jinja2

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    env.filters["tojson"] = _tojson
    try:
        return env.from_string(template_text).render(**info.as_dict())
    except jinja2.TemplateError as exc:
        raise ConfigError(f"{source}: template error: {exc}") from None


def _tojson(value: Any) -> str:
    import json

    return json.dumps(value)


def builtin_template(name: str) -> str:
    """The text of a template shipped in the wheel (``buildkit_tasks.templates``)."""
    return resources.files("buildkit_tasks.templates").joinpath(name).read_text("utf-8")


def stamp(settings: Settings, info: VersionInfo) -> list[Path]:
    """Render every ``[tool.buildkit.version] files`` entry into ``output_dir``.

    Returns the written paths. Each file is written atomically.
    """
    written = []
    for vf in settings.version_files:
        if vf.template is None:
            text, source = builtin_template("version.json.j2"), "built-in version.json.j2"
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
