"""Find the project's Dockerfiles (``[tool.buildkit.discover]``) and name their images.

Walks each root once, pruning ignored and hidden directories, so 200 Dockerfiles in a large
tree are found in well under a second.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from pathlib import Path

from .config import ImageSpec, Settings, valid_name
from .errors import ConfigError
from .graph import logical_lines, substitute

SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv", ".tox", ".nox"}


def _ignored(rel: str, patterns: tuple[str, ...]) -> bool:
    for pat in patterns:
        if fnmatch.fnmatchcase(rel, pat) or fnmatch.fnmatchcase(rel + "/", pat):
            return True
        if pat.startswith("**/") and (
            fnmatch.fnmatchcase(rel, pat[3:]) or fnmatch.fnmatchcase(rel + "/", pat[3:])
        ):
            return True
    return False


def label_value(dockerfile_text: str, label: str) -> str | None:
    """The last ``LABEL <label>=value`` (or legacy ``LABEL <label> value``) in a Dockerfile."""
    found = None
    pair = re.compile(r"""(?P<k>"[^"]*"|[^\s=]+)=(?P<v>"(?:\\.|[^"])*"|'[^']*'|\S+)""")
    for line in logical_lines(dockerfile_text):
        instruction, _, rest = line.partition(" ")
        if instruction.upper() != "LABEL":
            continue
        pairs = list(pair.finditer(rest))
        if pairs:
            for m in pairs:
                if m.group("k").strip('"') == label:
                    found = m.group("v").strip("\"'")
        else:
            key, _, value = rest.strip().partition(" ")
            if key == label:
                found = value.strip().strip("\"'")
    return found


def discover(settings: Settings) -> dict[str, ImageSpec]:
    """Images found under the discover roots, by name. Raises ConfigError when two Dockerfiles
    claim one name (naming both) or a name is not a valid repository name."""
    d = settings.discover
    if d is None:
        return {}
    found: dict[str, ImageSpec] = {}
    for top in d.roots:
        for dirpath, dirnames, filenames in os.walk(top):
            rel_dir = Path(dirpath).relative_to(settings.root).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir
            dirnames[:] = sorted(
                n
                for n in dirnames
                if n not in SKIP_DIRS
                and not n.startswith(".")
                and not _ignored(f"{rel_dir}/{n}".lstrip("/"), d.ignore)
            )
            if "Dockerfile" not in filenames:
                continue
            dockerfile = Path(dirpath) / "Dockerfile"
            rel = dockerfile.relative_to(settings.root).as_posix()
            if _ignored(rel, d.ignore):
                continue
            name = Path(dirpath).name.lower()
            if d.name_label:
                text = dockerfile.read_text(encoding="utf-8", errors="replace")
                value = label_value(text, d.name_label)
                if value:
                    name = substitute(value, {}).split(":")[0].rsplit("/", 1)[-1]
            if not valid_name(name):
                raise ConfigError(
                    f"{dockerfile}: image name {name!r} is not a valid repository "
                    "name (lowercase letters, digits, '.', '_', '-')"
                )
            if name in found:
                raise ConfigError(
                    f"image {name!r} is claimed by two Dockerfiles: "
                    f"{found[name].dockerfile} and {dockerfile}"
                )
            found[name] = ImageSpec(name=name, context=Path(dirpath), dockerfile=dockerfile)
    return found


def all_images(settings: Settings) -> Mapping[str, ImageSpec]:
    """Discovered images, then ``[tool.buildkit.images]`` tables (which win for a name)."""
    images = dict(discover(settings))
    for name, spec in settings.images.items():
        images[name] = spec
    return images


__all__ = ["all_images", "discover", "label_value"]
