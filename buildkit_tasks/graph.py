"""The image graph: which configured image builds on which, and in what order.

Edges are read from each Dockerfile: ``FROM``, ``COPY/ADD --from=`` and ``RUN --mount=...from=``
naming another image of the project, by its bare name (``FROM runtime``) or by a reference with
the project's registry or a local prefix, with any tag or digest
(``FROM localhost:5000/acme/runtime:latest``). Global ``ARG`` defaults (overridden by the
image's build args) are substituted first. Every other reference is external, left to the engine.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import ImageSpec, Settings
from .errors import ConfigError

_VAR_RE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?[-+](?P<default>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_MOUNT_FROM_RE = re.compile(r"(?:^|,)from=([^,\s]+)")


@dataclass(frozen=True)
class ImageNode:
    """An image with its in-project dependencies.

    ``local_refs`` maps each reference as written in the Dockerfile (after ARG substitution)
    to the name of the project image it means; the build passes each as a named build context.
    """

    spec: ImageSpec
    depends_on: tuple[str, ...]
    local_refs: Mapping[str, str]

    @property
    def name(self) -> str:
        return self.spec.name


def logical_lines(text: str) -> list[str]:
    """Dockerfile instructions, one string each: continuations joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") and not pending.strip():
            continue
        if pending and stripped.startswith("#"):
            continue  # comment inside a continuation
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        pending += raw
        if pending.strip():
            lines.append(pending.strip())
        pending = ""
    if pending.strip():
        lines.append(pending.strip())
    return lines


def substitute(value: str, variables: Mapping[str, str]) -> str:
    """Expand ``$VAR``, ``${VAR}`` and ``${VAR:-default}`` from ``variables``."""

    def repl(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        if name in variables and variables[name] != "":
            return variables[name]
        return m.group("default") or ""

    return _VAR_RE.sub(repl, value)


def _parse_args(rest: str) -> dict[str, str]:
    out = {}
    for token in rest.split():
        key, _, default = token.partition("=")
        out[key] = default.strip("\"'")
    return out


def referenced_images(dockerfile_text: str, build_args: Mapping[str, str]) -> list[str]:
    """Every image reference a Dockerfile uses that is not one of its own stages.

    Returns references in order of appearance (duplicates removed), ARGs substituted.
    """
    refs: list[str] = []
    stages: set[str] = set()
    global_args: dict[str, str] = {}
    seen_from = False

    def add(ref: str) -> None:
        ref = substitute(ref, global_args)
        if ref and ref.lower() not in stages and not ref.isdigit() and ref not in refs:
            refs.append(ref)

    for line in logical_lines(dockerfile_text):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        tokens = rest.split()
        if instruction == "ARG" and not seen_from:
            for key, default in _parse_args(rest).items():
                global_args[key] = build_args.get(key, default)
        elif instruction == "FROM":
            seen_from = True
            words = [t for t in tokens if not t.startswith("--")]
            if not words:
                continue
            if words[0].lower() != "scratch":
                add(words[0])
            if len(words) >= 3 and words[1].lower() == "as":
                stages.add(words[2].lower())
        elif instruction in ("COPY", "ADD"):
            for t in tokens:
                if t.startswith("--from="):
                    add(t[len("--from=") :])
        elif instruction == "RUN":
            for t in tokens:
                if t.startswith("--mount="):
                    m = _MOUNT_FROM_RE.search(t[len("--mount=") :])
                    if m:
                        add(m.group(1))
    return refs


def repository_of(reference: str) -> str:
    """``reference`` without tag and digest: ``a.io:5000/x/y:1@sha256:..`` -> ``a.io:5000/x/y``."""
    ref = reference.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return ref[:colon] if colon > slash else ref


def match_local(reference: str, names: Iterable[str], prefixes: Iterable[str]) -> str | None:
    """The project image ``reference`` names, or None when it is external.

    A reference is local when its repository is ``<name>`` or ``<prefix>/<name>`` for one of
    ``prefixes`` (the registry and any local prefixes).
    """
    repo = repository_of(reference)
    names = set(names)
    if repo in names:
        return repo
    for prefix in prefixes:
        if prefix and repo.startswith(prefix.rstrip("/") + "/"):
            rest = repo[len(prefix.rstrip("/")) + 1 :]
            if rest in names:
                return rest
    return None


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


def build_graph(settings: Settings, images: Mapping[str, ImageSpec] | None = None) -> ImageGraph:
    """Read every image's Dockerfile and infer its dependencies.

    ``images`` defaults to ``settings.images``; references with the registry or one of the
    discover ``local_prefixes`` name project images. Raises ConfigError for an unreadable
    Dockerfile or a dependency cycle.
    """
    images = settings.images if images is None else images
    local = settings.discover.local_prefixes if settings.discover else ()
    prefixes = [settings.registry, *local]
    nodes = {name: infer_node(spec, images, prefixes) for name, spec in images.items()}
    return ImageGraph(nodes)


def infer_node(spec: ImageSpec, images: Iterable[str], prefixes: Iterable[str]) -> ImageNode:
    """The :class:`ImageNode` for ``spec``, its edges read from its Dockerfile."""
    try:
        text = Path(spec.dockerfile).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{spec.dockerfile}: cannot read Dockerfile: {exc.strerror}") from None
    local_refs: dict[str, str] = {}
    for ref in referenced_images(text, spec.build_args):
        name = match_local(ref, images, prefixes)
        if name is not None and name != spec.name:
            local_refs[ref] = name
        elif name == spec.name:
            raise ConfigError(f"{spec.dockerfile}: image {spec.name!r} builds on itself ({ref})")
    depends_on = tuple(dict.fromkeys(local_refs.values()))
    return ImageNode(spec=spec, depends_on=depends_on, local_refs=local_refs)
