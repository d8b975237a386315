"""``doctor`` namespace: ``inv doctor`` checks this machine before a build."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from invoke import Collection, Context

from ..errors import BuildkitError
from .common import CONFIG_DEFAULTS, dry, runner, settings, task

if TYPE_CHECKING:
    from ..health import Check


@task(name="check")
def check(c: Context) -> None:
    """Check this machine for a build: Docker engine (26+), buildx, the containerd image
    store, helm, qemu binfmt for the configured ``platforms`` (default linux/arm64), hadolint,
    free disk (fail below 2 GB, warn below 10 GB), memory (warn below 2 GB), CPUs (warn below
    2), python, and whether ``registry`` answers ``/v2/``. Prints one line per check,
    ok/warn/fail with the fix; exits non-zero when any check fails. Reads only."""
    from .. import health

    s = settings(c)
    if dry(c):
        print(shlex.join(["sh", "-c", health.probe_script(str(s.root))]))
        print(
            "# then: docker info, helm version --short, docker buildx inspect, GET <registry>/v2/"
        )
        return
    print_checks(health.doctor(s, runner(c, s)))


def print_checks(checks: Sequence[Check]) -> None:
    """The ok/warn/fail table shared with remote.hosts; raises BuildkitError on a fail."""
    hw = max(len(x.host) for x in checks)
    ww = max(len(x.what) for x in checks)
    for x in checks:
        fix = f"  -> {x.fix}" if x.fix and x.level != "ok" else ""
        print(f"{x.host:<{hw}}  {x.level:<4}  {x.what:<{ww}}  {x.found}{fix}")
    failed = [x for x in checks if x.level == "fail"]
    if failed:
        raise BuildkitError(
            f"{len(failed)} checks failed: " + ", ".join(f"{x.host} {x.what}" for x in failed)
        )


ns = Collection("doctor")
ns.add_task(check, default=True)
ns.configure(CONFIG_DEFAULTS)
