"""The image graph: which configured image builds on which, and in what order.

Edges are read from each Dockerfile (:mod:`.dockerfiles`, BuildKit's parser): ``FROM``,
``COPY --from=`` and ``RUN --mount=...,from=`` in the stages the image's target needs, naming
another image of the project (:mod:`.references`): by a reference under the project's registry or
a local prefix with any tag or digest (``FROM localhost:5000/acme/runtime:latest``,
``FROM local-only/base:latest``), or by its bare name (``FROM runtime``) when bare names are on.
Every other reference is external, left to the engine.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from . import dockerfilecache, dockerfiles
from .config import ImageSpec, Settings
from .errors import ConfigError
from .references import ProjectImages, ReferenceError


@dataclass(frozen=True)
class ImageNode:
    """An image with its in-project dependencies.

    ``local_refs`` maps each reference as written in the Dockerfile (after ARG substitution)
    to the name of the project image it means; the build passes each as a named build context.
    ``dangling``: references under a local prefix that name no project image.
    """

    spec: ImageSpec
    depends_on: tuple[str, ...]
    local_refs: Mapping[str, str]
    dangling: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name


class ImageGraph:
    """Configured images and the edges between them; acyclic by construction."""

    def __init__(self, nodes: Mapping[str, ImageNode]) -> None:
        self.nodes = dict(nodes)
        self._sorter_check()

    def _sorter_check(self) -> None:
        try:
            self._order = list(graphlib.TopologicalSorter(self.predecessors()).static_order())
        except graphlib.CycleError as exc:
            cycle = exc.args[1]
            files = ", ".join(str(self.nodes[n].spec.dockerfile) for n in cycle[:-1])
            raise ConfigError(
                f"image dependency cycle {' -> '.join(cycle)} (Dockerfiles: {files})"
            ) from None

    def predecessors(self) -> dict[str, tuple[str, ...]]:
        """``{image: (images it builds on)}`` for graphlib."""
        return {name: node.depends_on for name, node in self.nodes.items()}

    def order(self) -> list[str]:
        """Image names, each after every image it depends on."""
        return list(self._order)

    def select(self, names: Iterable[str]) -> ImageGraph:
        """The subgraph of ``names`` and everything they depend on.

        Raises ConfigError naming an unknown image.
        """
        wanted: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name not in self.nodes:
                known = ", ".join(sorted(self.nodes)) or "none configured"
                raise ConfigError(f"--name: no image {name!r} (images: {known})")
            if name not in wanted:
                wanted.add(name)
                stack.extend(self.nodes[name].depends_on)
        return ImageGraph({n: self.nodes[n] for n in self.nodes if n in wanted})

    def warnings(self) -> list[str]:
        """One line per image that names, under a local prefix, an image the project does not
        have (a base left out by ``ignore``, a skip label, or a typo)."""
        return [
            f"{node.spec.dockerfile}: {', '.join(node.dangling)} names no image of this project"
            " (it has a local prefix, so no registry has it either)"
            for node in self.nodes.values()
            if node.dangling
        ]

    def dependents(self, name: str) -> set[str]:
        """Every image that builds on ``name``, directly or not."""
        out: set[str] = set()
        frontier = {name}
        while frontier:
            frontier = {
                n
                for n, node in self.nodes.items()
                if n not in out and frontier.intersection(node.depends_on)
            }
            out |= frontier
        return out


def project_graph(settings: Settings, names: Iterable[str] = ()) -> ImageGraph:
    """The graph of the project's images (configured and discovered), narrowed to ``names``
    and what they need (all when empty). Raises ConfigError."""
    from .discovery import all_images

    graph = build_graph(settings, all_images(settings))
    names = list(names)
    return graph.select(names) if names else graph


def build_graph(settings: Settings, images: Mapping[str, ImageSpec] | None = None) -> ImageGraph:
    """Read every image's Dockerfile and infer its dependencies.

    ``images`` defaults to ``settings.images``. Which references name project images is
    decided by :class:`references.ProjectImages` from ``registry`` and ``image_prefix``, the
    discover ``local_prefixes`` and ``bare_names`` (:attr:`Settings.bare_names`). Raises
    ConfigError for an unreadable or invalid Dockerfile, a missing target stage, or a
    dependency cycle.
    """
    images = settings.images if images is None else images
    local = settings.discover.local_prefixes if settings.discover else ()
    try:
        project = ProjectImages(
            images, settings.registry, local, settings.bare_names, settings.image_prefix
        )
    except ReferenceError as exc:
        raise ConfigError(f"registry / local_prefixes: {exc}") from None
    graph = ImageGraph({name: infer_node(spec, project) for name, spec in images.items()})
    dockerfilecache.save()  # what was parsed anew, for the next run
    return graph


def infer_node(spec: ImageSpec, project: ProjectImages) -> ImageNode:
    """The :class:`ImageNode` for ``spec``: every image the stages its target needs use
    (``FROM``, ``COPY --from``, ``RUN --mount=from=``), kept when ``project`` says it names
    another project image. A reference to the image itself is its upstream base (the project's
    ``nginx`` rebuilding Docker Hub's ``nginx``), never an edge."""
    dockerfile = dockerfiles.load(spec.dockerfile, spec.build_args)
    try:
        uses = dockerfile.image_uses(spec.target)
    except dockerfiles.DockerfileError as exc:
        raise ConfigError(f"{spec.dockerfile}: {exc}") from None
    local_refs: dict[str, str] = {}
    dangling: list[str] = []
    for use in uses:
        name = project.match(use.reference)
        if name is not None and name != spec.name:
            local_refs[use.reference] = name
        elif name is None and project.dangling(use.reference):
            dangling.append(use.reference)
    depends_on = tuple(dict.fromkeys(local_refs.values()))
    return ImageNode(spec, depends_on, local_refs, tuple(dict.fromkeys(dangling)))
