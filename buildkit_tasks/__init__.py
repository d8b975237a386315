"""buildkit-tasks: composable Invoke tasks for a project's whole build.

In a consumer's ``tasks.py``::

    from buildkit_tasks import ns

Each namespace is importable on its own and composable with ``invoke.Collection``::

    from invoke import Collection
    from buildkit_tasks.tasks import image, helm
    ns = Collection(image.ns, helm.ns)

The plain Python API beneath the tasks, usable without Invoke: :mod:`buildkit_tasks.config`
(settings), :mod:`.graph` (image dependencies), :mod:`.scheduler` (parallel DAG runs),
:mod:`.images`, :mod:`.charts`, :mod:`.archive`, :mod:`.quality` (the build steps),
:mod:`.versioning`, :mod:`.report`, :mod:`.hosts` (SSH build hosts) and :mod:`.remote`
(tasks run on hosts).
"""

from __future__ import annotations

from invoke import Collection

from .tasks import archive as _archive
from .tasks import build as _build
from .tasks import configuration as _configuration
from .tasks import doctor as _doctor
from .tasks import helm as _helm
from .tasks import image as _image
from .tasks import lint as _lint
from .tasks import remote as _remote
from .tasks import scaffold as _scaffold
from .tasks import test as _test
from .tasks import version as _version
from .tasks.common import CONFIG_DEFAULTS

__all__ = ["ns"]

ns = Collection(
    _lint.ns,
    _test.ns,
    _version.ns,
    _image.ns,
    _helm.ns,
    _archive.ns,
    _build.ns,
    _remote.ns,
    _doctor.ns,
    _configuration.ns,
    _scaffold.ns,
)
ns.configure(CONFIG_DEFAULTS)
