"""The build plan: every version, image reference and chart of one run, computed once.

:func:`versions` asks git (once per process and project: every pre-task of an ``inv`` call,
and ``--dry``, see the same answers) for the project version and the own versions of images
and charts with ``version_paths``. :func:`make` combines them with the settings and the image
graph into a :class:`BuildPlan`: per image its spec, the images it builds on, its version,
repository, tag and references, and whether it is pushed; per chart its name, version,
``appVersion`` and image values. Tasks read references and versions only from the plan.

What the engine knows (input keys, cache decisions) belongs to the image build, planned from
this plan in :mod:`.images`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import versioning
from .config import ImageSpec, Settings
from .errors import ConfigError
from .graph import ImageGraph
from .versioning import VersionInfo

LATEST = "latest"


@dataclass(frozen=True)
class Versions:
    """The versions of one run: ``project`` (from git tags), ``images`` (image name -> its own
    version, for images with ``version_paths``), ``charts`` (chart directory relative to the
    project root, POSIX form -> its own version, for ``helm.version_paths``)."""

    project: VersionInfo
    images: Mapping[str, VersionInfo] = field(default_factory=dict)
    charts: Mapping[str, VersionInfo] = field(default_factory=dict)

    def image(self, name: str) -> VersionInfo:
        """Image ``name``'s version: its own, else the project's."""
        return self.images.get(name, self.project)

    def chart(self, key: str) -> VersionInfo:
        """The version of the chart at ``key`` (relative POSIX path): its own, else the
        project's."""
        return self.charts.get(key, self.project)

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project.as_dict(),
            "images": {k: v.as_dict() for k, v in self.images.items()},
            "charts": {k: v.as_dict() for k, v in self.charts.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Versions:
        """Back from :meth:`as_dict`. Raises KeyError / TypeError on another shape."""
        info = VersionInfo.from_dict
        return cls(
            info(data["project"]),
            {k: info(v) for k, v in data.get("images", {}).items()},
            {k: info(v) for k, v in data.get("charts", {}).items()},
        )


VERSIONS_FILE_ENV = "BUILDKIT_VERSIONS_FILE"


def read_versions(path: Path) -> Versions:
    """Versions from a JSON file written with :meth:`Versions.as_dict` (what remote runs
    ship to a host, whose copy of the work tree has no git history). Raises ConfigError naming
    the file."""
    try:
        return Versions.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} (from ${VERSIONS_FILE_ENV}): expected a versions JSON file ({exc})"
        ) from None


_VERSIONS: dict[tuple[Any, ...], Versions] = {}
_PROJECT: dict[tuple[Any, ...], VersionInfo] = {}


def project_version(settings: Settings) -> VersionInfo:
    """The project version, asked of git once per process for the same root, tag pattern and
    dev style; the ``project`` entry of the file named by env ``BUILDKIT_VERSIONS_FILE`` when
    set (remote runs); in the chartpress scheme, the chartpress version of the whole tree."""
    if os.environ.get(VERSIONS_FILE_ENV):
        return read_versions(Path(os.environ[VERSIONS_FILE_ENV])).project
    s = settings
    key = (s.root, s.tag_pattern, s.dev_style, s.version_scheme, s.base_version)
    if key not in _PROJECT:
        if s.version_scheme == "chartpress":
            _PROJECT[key] = _chartpress(s).version()
        else:
            _PROJECT[key] = versioning.detect(s.root, s.tag_pattern, s.dev_style)
    return _PROJECT[key]


def _chartpress(settings: Settings) -> versioning.Chartpress:
    return versioning.Chartpress(settings.root, settings.tag_pattern, settings.base_version)


def _rel(settings: Settings, path: Path) -> str:
    return os.path.relpath(path, settings.root).replace(os.sep, "/")


def image_version_paths(settings: Settings, spec: ImageSpec) -> tuple[str, ...]:
    """The paths (relative to the project root) whose last commit gives image ``spec`` its
    own version: its ``version_paths``; in the chartpress scheme every image has them, as
    chartpress's image paths: ``pyproject.toml`` (chartpress: its config file), the build
    context, the Dockerfile and ``version_paths``."""
    if settings.version_scheme != "chartpress":
        return spec.version_paths
    own = ["pyproject.toml", _rel(settings, spec.context), _rel(settings, spec.dockerfile)]
    return tuple(sorted(set(own) | set(spec.version_paths)))


def chart_version_paths(
    settings: Settings, chart: Path, images: Mapping[str, ImageSpec]
) -> tuple[str, ...]:
    """The paths whose last commit gives ``chart`` its own version: its
    ``helm.version_paths`` entry; in the chartpress scheme every chart has them, as
    chartpress's chart paths: ``pyproject.toml``, the chart directory, that entry, and the
    paths of every image ``helm.image_values`` names."""
    own = settings.chart_version_paths.get(chart, ())
    if settings.version_scheme != "chartpress":
        return own
    paths = {"pyproject.toml", _rel(settings, chart), *own}
    for name in set(settings.image_values.values()):
        if name in images:
            paths.update(image_version_paths(settings, images[name]))
    return tuple(sorted(paths))


def versions(settings: Settings, images: Mapping[str, ImageSpec] | None = None) -> Versions:
    """The run's :class:`Versions`, asked of git once per process for the same project, tag
    pattern, dev style and version paths; from the file named by env
    ``BUILDKIT_VERSIONS_FILE`` when set (remote runs). ``images`` defaults to every image of
    the project (configured and discovered)."""
    if os.environ.get(VERSIONS_FILE_ENV):
        return read_versions(Path(os.environ[VERSIONS_FILE_ENV]))
    if images is None:
        from .discovery import all_images

        images = all_images(settings)
    s = settings
    image_paths = tuple(
        sorted((n, paths) for n, sp in images.items() if (paths := image_version_paths(s, sp)))
    )
    chart_paths = tuple(
        sorted(
            (_chart_key(s, chart), paths)
            for chart in s.charts
            if (paths := chart_version_paths(s, chart, images))
        )
    )
    key = (
        s.root,
        s.tag_pattern,
        s.dev_style,
        s.version_scheme,
        s.base_version,
        image_paths,
        chart_paths,
    )
    if key not in _VERSIONS:
        project = project_version(s)
        scheme = _chartpress(s) if s.version_scheme == "chartpress" else None

        def own(paths: tuple[str, ...]) -> VersionInfo:
            if scheme is not None:
                return scheme.version(paths)
            return versioning.for_paths(s.root, paths, s.tag_pattern, s.dev_style)

        _VERSIONS[key] = Versions(
            project,
            {name: own(paths) for name, paths in image_paths},
            {chart: own(paths) for chart, paths in chart_paths},
        )
    return _VERSIONS[key]


def _chart_key(settings: Settings, chart: Path) -> str:
    return chart.relative_to(settings.root).as_posix()


@dataclass(frozen=True)
class ImagePlan:
    """One image of the plan: ``repository`` ``<registry>/<name>`` (or ``name``), ``tag`` the
    Docker form of its version; ``push``: whether a push run pushes it (false for build-only
    images)."""

    name: str
    spec: ImageSpec
    depends_on: tuple[str, ...]
    version: VersionInfo
    repository: str
    tag: str
    push: bool

    @property
    def reference(self) -> str:
        """``<repository>:<tag>``: the reference this run builds and pushes."""
        return f"{self.repository}:{self.tag}"

    @property
    def references(self) -> tuple[str, str]:
        """``(<repository>:<tag>, <repository>:latest)``: every name the image gets."""
        return self.reference, f"{self.repository}:{LATEST}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "depends_on": list(self.depends_on),
            "version": self.version.version,
            "references": list(self.references),
            "push": self.push,
        }


@dataclass(frozen=True)
class ChartPlan:
    """One chart of the plan: ``source`` its directory, ``name`` from its ``Chart.yaml``,
    ``version`` (SemVer: its own from its version paths, else the project's),
    ``app_version`` (``helm.app_version = "image"``: the project's image tag, and
    ``sets_app_version``; ``"keep"``: Chart.yaml's own, left alone), ``image_values`` (value
    path -> (repository, tag) of the image it names)."""

    source: Path
    name: str
    version: str
    app_version: str
    image_values: Mapping[str, tuple[str, str]]
    sets_app_version: bool = True

    @property
    def packaged_app_version(self) -> str | None:
        """The ``appVersion`` ``helm package`` is told to set (None: Chart.yaml's own)."""
        return self.app_version if self.sets_app_version else None

    @property
    def filename(self) -> str:
        """``<name>-<version>.tgz``, as ``helm package`` names the archive."""
        return f"{self.name}-{self.version}.tgz"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": str(self.source),
            "version": self.version,
            "app_version": self.app_version,
            "image_values": {k: f"{r}:{t}" for k, (r, t) in self.image_values.items()},
        }


@dataclass(frozen=True)
class BuildPlan:
    """One run's plan: :class:`Versions`, the image graph, an :class:`ImagePlan` per image
    (in build order) and a :class:`ChartPlan` per chart of ``helm.charts``."""

    versions: Versions
    graph: ImageGraph
    images: Mapping[str, ImagePlan]
    charts: tuple[ChartPlan, ...] = ()

    @property
    def version(self) -> VersionInfo:
        """The project version."""
        return self.versions.project

    def image(self, name: str) -> ImagePlan:
        """The plan of image ``name``. Raises ConfigError naming the known images."""
        if name not in self.images:
            known = ", ".join(sorted(self.images)) or "none configured"
            raise ConfigError(f"--name: no image {name!r} (images: {known})")
        return self.images[name]

    def select(self, names: Iterable[str]) -> BuildPlan:
        """The plan narrowed to ``names`` and the images they build on (all when empty).
        Raises ConfigError naming an unknown image."""
        names = list(names)
        if not names:
            return self
        graph = self.graph.select(names)
        images = {n: self.images[n] for n in graph.order()}
        return BuildPlan(self.versions, graph, images, self.charts)

    def references(self, pushed_only: bool = False) -> list[str]:
        """Each image's version reference in build order; ``pushed_only`` leaves out
        build-only images (never in a registry or an archive)."""
        return [p.reference for p in self.images.values() if p.push or not pushed_only]

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version.as_dict(),
            "images": [p.as_dict() for p in self.images.values()],
            "charts": [c.as_dict() for c in self.charts],
        }


def make(settings: Settings, names: Iterable[str] = ()) -> BuildPlan:
    """The plan of the project (narrowed to ``names`` and what they need, when given).

    Reads every Dockerfile (:func:`graph.project_graph`) and each chart's ``Chart.yaml``;
    versions from :func:`versions`. Raises ConfigError: an invalid Dockerfile or cycle, an
    ``helm.image_values`` entry naming an unknown or build-only image, an unreadable
    ``Chart.yaml``.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .graph import ImageGraph, project_graph

    # the project version is git's answer (a dozen short git commands): asked beside the
    # Dockerfiles being read, kept for versions() below
    with ThreadPoolExecutor(1, thread_name_prefix="version") as pool:
        project = pool.submit(project_version, settings)
        graph = project_graph(settings)
        project.result()
    specs = {n: node.spec for n, node in graph.nodes.items()}
    vs = versions(settings, specs)
    images = {}
    nodes = {}
    for name in graph.order():
        node = graph.nodes[name]
        info = vs.image(name)
        spec = templated(node.spec, info, vs.project.branch)
        nodes[name] = replace(node, spec=spec)
        images[name] = ImagePlan(
            name=name,
            spec=spec,
            depends_on=node.depends_on,
            version=info,
            repository=settings.repository(name),
            tag=info.docker_tag,
            push=spec.push,
        )
    plan = BuildPlan(vs, ImageGraph(nodes), images, _charts(settings, vs, images))
    return plan.select(names)


def templated(spec: ImageSpec, version: VersionInfo, branch: str | None) -> ImageSpec:
    """``spec`` with ``{TAG}`` (the image's tag), ``{LAST_COMMIT}`` (git's abbreviation of
    the commit its version comes from) and ``{BRANCH}`` (the checked-out branch, empty when
    detached) replaced in ``build_args`` values and ``extra_build_args``, as chartpress
    expands them. Other braces are left as written."""
    names = {
        "{TAG}": version.docker_tag,
        "{LAST_COMMIT}": version.short_commit or "",
        "{BRANCH}": branch or "",
    }

    def fill(text: str) -> str:
        for placeholder, value in names.items():
            text = text.replace(placeholder, value)
        return text

    if not any(p in v for p in names for v in (*spec.build_args.values(), *spec.extra_build_args)):
        return spec
    return replace(
        spec,
        build_args={k: fill(v) for k, v in spec.build_args.items()},
        extra_build_args=tuple(fill(a) for a in spec.extra_build_args),
    )


def _charts(
    settings: Settings, vs: Versions, images: Mapping[str, ImagePlan]
) -> tuple[ChartPlan, ...]:
    values: dict[str, tuple[str, str]] = {}
    for path, name in settings.image_values.items():
        where = "[tool.buildkit.helm.image_values]"
        if name not in images:
            known = ", ".join(sorted(n for n, p in images.items() if p.push)) or "none"
            raise ConfigError(
                f"{where}: image_values {path!r} names image {name!r}; known images: {known}"
            )
        if not images[name].push:
            raise ConfigError(
                f"{where} {path!r} names build-only image {name!r} (push = false): it is never "
                "pushed, so a chart cannot use it"
            )
        values[path] = (images[name].repository, images[name].tag)
    if not settings.charts:  # nothing to read: the YAML reader is not even imported
        return ()
    from .charts import load_yaml

    out = []
    image_app = settings.app_version == "image"
    for chart in settings.charts:
        meta = load_yaml(chart / "Chart.yaml")
        get = meta.get
        out.append(
            ChartPlan(
                source=chart,
                name=str(get("name") or chart.name),
                version=vs.chart(_chart_key(settings, chart)).chart_version,
                app_version=vs.project.docker_tag if image_app else str(get("appVersion") or ""),
                image_values=values,
                sets_app_version=image_app,
            )
        )
    return tuple(out)
