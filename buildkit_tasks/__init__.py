"""buildkit-tasks: composable Invoke tasks for a project's whole build.

In a consumer's ``tasks.py``::

    from buildkit_tasks import ns

Each namespace is importable on its own (``from buildkit_tasks.tasks import image``) and
composable with ``invoke.Collection``. The plain Python API beneath the tasks lives in
:mod:`buildkit_tasks.config`, :mod:`.graph`, :mod:`.scheduler`, :mod:`.images`, :mod:`.charts`,
:mod:`.archive`, :mod:`.versioning`, :mod:`.quality` and :mod:`.report`.
"""

from __future__ import annotations

from invoke import Collection

from .tasks import archive, build, helm, image, lint, test, version
from .tasks.common import CONFIG_DEFAULTS

__all__ = ["ns", "archive", "build", "helm", "image", "lint", "test", "version"]

ns = Collection(
    lint.ns, test.ns, version.ns, image.ns, helm.ns, archive.ns, build.ns,
)
ns.configure(CONFIG_DEFAULTS)
