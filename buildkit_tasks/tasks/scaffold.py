"""``scaffold`` namespace: render project templates into the current repository (also the
``buildkit-tasks`` console script, for repositories without a tasks.py yet)."""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, Context

from .common import CONFIG_DEFAULTS, dry, task


@task(
    name="new",
    help={
        "kind": "python or node: which Dockerfile and source skeleton to write.",
        "name": "Project, image and chart name (default: the directory name).",
        "base_image": "Base image of both Dockerfile stages, a build argument "
        "(default python:3.12-slim / node:22-slim).",
        "registry": "Repository prefix for [tool.buildkit] registry "
        "(default localhost:5000/<name>).",
        "force": "Overwrite files that already exist.",
        "directory": "Where to write (default: the current directory).",
    },
)
def new(
    c: Context,
    kind: str = "python",
    name: str | None = None,
    base_image: str | None = None,
    registry: str | None = None,
    force: bool = False,
    directory: str = ".",
) -> None:
    """Write a ready project: a multi-stage Dockerfile (builder stage, slim runtime, non-root
    user, dependency layers before the source), ``.dockerignore``, a Helm chart skeleton under
    ``charts/<name>`` (its image values stamped by helm.package), ``tasks.py`` importing the
    buildkit-tasks collection, and a ``[tool.buildkit]`` table in ``pyproject.toml`` (appended
    when the file exists without one); for python a ``src/<module>`` package and a test, for
    node ``package.json``, ``package-lock.json`` and ``index.js``.

    An existing file is never overwritten without ``--force``: without it, nothing is written
    and the clashing files are named (exit 1). Under ``inv --dry`` only lists the files.
    """
    from .. import scaffold

    root = Path(directory).resolve()
    plan = scaffold.render(kind, name or scaffold.default_name(root), root, base_image, registry)
    if dry(c):
        for rel in plan.files:
            print(f"# would write {rel}")
        if plan.append:
            print(f"# would append [tool.buildkit] to {scaffold.PYPROJECT}")
        return
    for rel in scaffold.write(root, plan, force=force):
        print(f"scaffold: wrote {rel}")


ns = Collection("scaffold")
ns.add_task(new, default=True)
ns.configure(CONFIG_DEFAULTS)
