"""Project templates rendered into a repository: ``buildkit-tasks scaffold``.

``render`` turns the Jinja2 templates shipped in the wheel (``buildkit_tasks.templates``) into
``{relative path: text}``; ``write`` puts them into a directory all-or-nothing: when any file
already exists (and ``force`` is off) nothing is written and the conflicts are named. A
``pyproject.toml`` without a ``[tool.buildkit]`` table gets the table appended instead of
being replaced; one that already has the table is left alone (even with ``force``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import references
from .errors import ConfigError
from .fsutil import write_text_atomic

KINDS = ("python", "node")
DEFAULT_IMAGES = {"python": "python:3.12-slim", "node": "node:22-slim"}
PYPROJECT = "pyproject.toml"
_NAME = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")


def _render(name: str, variables: Mapping[str, object]) -> str:
    from . import templating

    return templating.render(templating.builtin(name), variables, f"built-in {name}")


def default_name(root: Path) -> str:
    """A project name from the directory name: lowercase letters, digits and dashes."""
    name = re.sub(r"[^a-z0-9]+", "-", root.resolve().name.lower()).strip("-")
    return name or "app"


@dataclass(frozen=True)
class Plan:
    """Files to write (relative path -> text) and a table to append to an existing
    pyproject.toml (``append``: None when pyproject.toml is in ``files`` or needs nothing)."""

    files: dict[str, str]
    append: str | None


def render(
    kind: str, name: str, root: Path, base_image: str | None = None, registry: str | None = None
) -> Plan:
    """What ``scaffold`` writes for ``kind`` (python | node) and project ``name``.

    ``base_image`` (default ``python:3.12-slim`` / ``node:22-slim``) becomes the Dockerfile's
    ``ARG`` default and the build arg in ``[tool.buildkit.images.<name>]``; ``registry``
    defaults to ``localhost:5000/<name>``. Raises ConfigError for a bad kind or name, a base
    image that is not an image reference or a registry that is not a repository prefix (what
    would otherwise be written into TOML and Dockerfile lines unescaped).
    """
    if kind not in KINDS:
        raise ConfigError(f"--kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if not _NAME.match(name):
        raise ConfigError(f"--name: expected lowercase letters, digits, '-' or '_' (got {name!r})")
    module = name.replace("-", "_")
    image = base_image or DEFAULT_IMAGES[kind]
    if references.try_parse(image) is None:
        raise ConfigError(
            f"--base-image: expected an image reference such as python:3.12-slim, got {image!r}"
        )
    if registry is not None and references.try_parse(f"{registry}/{name}") is None:
        raise ConfigError(
            f"--registry: expected a repository prefix such as localhost:5000/acme, "
            f"got {registry!r}"
        )
    variables = {
        "name": name,
        "module": module,
        "registry": registry or f"localhost:5000/{name}",
        "python_image": image,
        "node_image": image,
        "base_arg": "PYTHON_IMAGE" if kind == "python" else "NODE_IMAGE",
        "base_image": image,
        "lint_paths": '["src", "tests", "tasks.py"]' if kind == "python" else '["tasks.py"]',
    }
    files = {
        "Dockerfile": _render(f"{kind}/Dockerfile.j2", variables),
        ".dockerignore": _render(f"{kind}/dockerignore.j2", variables),
        "tasks.py": _render("common/tasks.py.j2", variables),
        f"charts/{name}/Chart.yaml": _render("chart/Chart.yaml.j2", variables),
        f"charts/{name}/values.yaml": _render("chart/values.yaml.j2", variables),
        f"charts/{name}/templates/deployment.yaml": _render(
            "chart/templates/deployment.yaml.j2", variables
        ),
    }
    if kind == "python":
        files[f"src/{module}/__init__.py"] = _render("python/init.py.j2", variables)
        files[f"src/{module}/__main__.py"] = _render("python/main.py.j2", variables)
        files[f"tests/test_{module}.py"] = _render("python/test.py.j2", variables)
    else:
        files["package.json"] = _render("node/package.json.j2", variables)
        files["package-lock.json"] = _render("node/package-lock.json.j2", variables)
        files["index.js"] = _render("node/index.js.j2", variables)
    table = _render("common/buildkit.toml.j2", variables)
    pyproject = root / PYPROJECT
    append = None
    if not pyproject.exists():
        head = _render(f"{'python' if kind == 'python' else 'common'}/pyproject.toml.j2", variables)
        files[PYPROJECT] = head + table
    elif "[tool.buildkit" not in pyproject.read_text(encoding="utf-8"):
        append = table
    # else: it already has a [tool.buildkit] table, which is left as it is even with --force
    return Plan(files, append)


def write(root: Path, plan: Plan, force: bool = False) -> list[str]:
    """Write ``plan`` under ``root``; returns the paths written (relative). Without ``force``
    nothing is written when any file exists: raises ConfigError naming them."""
    existing = sorted(p for p in plan.files if (root / p).exists())
    if existing and not force:
        raise ConfigError(
            f"scaffold: {len(existing)} files already exist ({', '.join(existing)}); "
            "nothing was written (--force overwrites them)"
        )
    written = []
    for rel, text in plan.files.items():
        write_text_atomic(root / rel, text)
        written.append(rel)
    if plan.append is not None:
        path = root / PYPROJECT
        current = path.read_text(encoding="utf-8")
        sep = "" if current.endswith("\n\n") else ("\n" if current.endswith("\n") else "\n\n")
        write_text_atomic(path, current + sep + plan.append)
        written.append(f"{PYPROJECT} (appended [tool.buildkit])")
    return written
