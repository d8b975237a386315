"""Find the project's Dockerfiles (``[tool.buildkit.discover]``) and name their images.

Walks each root once, pruning ignored and hidden directories; ``ignore`` has gitignore
semantics (``pathspec``): ``*`` stays inside one path component, ``**`` crosses them, a pattern
without a slash matches at any depth, ``!`` re-includes. Labels are read with BuildKit's parser
from the last stage (and the in-file stages it builds on), so a label in a heredoc or a builder
stage does not count. Nothing here is specific to one project: which labels name, skip or mark
build-only images is configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from . import dockerfiles
from .config import Discover, ImageSpec, Settings, truthy, valid_name
from .errors import ConfigError
from .references import try_parse

if TYPE_CHECKING:
    import pathspec

SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv", ".tox", ".nox"}
DOCKERFILE = "Dockerfile"


def ignore_spec(patterns: tuple[str, ...]) -> pathspec.PathSpec:
    """The compiled ``ignore`` patterns (gitignore semantics)."""
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(patterns)


def image_name(value: str) -> str:
    """The image name a name label's value gives: the last path component of the repository,
    without registry, tag or digest (``localhost:5000/acme/api:1`` -> ``api``). A value that is
    not a reference is returned lower-cased for the caller's validity check."""
    ref = try_parse(value.strip())
    return ref.last_component if ref is not None else value.strip().lower()


def label_value(dockerfile_text: str, label: str) -> str | None:
    """The value of ``label`` on the image a Dockerfile builds (its last stage), or None.
    Raises DockerfileError for a file BuildKit refuses."""
    return dockerfiles.parse(dockerfile_text).labels().get(label)


def _spec(d: Discover, directory: Path, names: dict[str, Path]) -> ImageSpec | None:
    """The image the Dockerfile in ``directory`` builds, or None when its skip label says so."""
    path = directory / DOCKERFILE
    name = directory.name.lower()
    push = True
    if d.name_label or d.skip_label or d.local_label:
        labels = dockerfiles.load(path).labels()
        if d.skip_label and truthy(labels.get(d.skip_label)):
            return None
        if d.name_label and labels.get(d.name_label):
            name = image_name(labels[d.name_label])
        if d.local_label and labels.get(d.local_label[0], "").strip() == d.local_label[1]:
            push = False
    if not valid_name(name):
        raise ConfigError(
            f"{path}: image name {name!r} is not a valid repository name "
            "(lowercase letters, digits, '.', '_', '-')"
        )
    if name in names:
        raise ConfigError(f"image {name!r} is claimed by two Dockerfiles: {names[name]} and {path}")
    names[name] = path
    return ImageSpec(name=name, context=directory, dockerfile=path, push=push)


def discover(settings: Settings) -> dict[str, ImageSpec]:
    """Images found under the discover roots, by name, in path order. Raises ConfigError when
    two Dockerfiles claim one name (naming both), a name is not a valid repository name, or a
    Dockerfile whose labels are needed cannot be read or parsed (naming it)."""
    d = settings.discover
    if d is None:
        return {}
    spec = ignore_spec(d.ignore)
    found: dict[str, ImageSpec] = {}
    claimed: dict[str, Path] = {}
    for top in d.roots:
        for dirpath, dirnames, filenames in os.walk(top):
            rel_dir = Path(dirpath).relative_to(settings.root).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            dirnames[:] = sorted(
                n
                for n in dirnames
                if n not in SKIP_DIRS
                and not n.startswith(".")
                and not spec.match_file(f"{rel_dir}{n}/")
            )
            if DOCKERFILE not in filenames or spec.match_file(f"{rel_dir}{DOCKERFILE}"):
                continue
            image = _spec(d, Path(dirpath), claimed)
            if image is not None:
                found[image.name] = image
    return found


def all_images(settings: Settings) -> Mapping[str, ImageSpec]:
    """Discovered images, then ``[tool.buildkit.images]`` tables (which win for a name)."""
    images = dict(discover(settings))
    for name, spec in settings.images.items():
        images[name] = spec
    return images


__all__ = ["all_images", "discover", "ignore_spec", "image_name", "label_value"]
