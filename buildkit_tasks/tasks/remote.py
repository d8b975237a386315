"""``remote`` namespace: ``remote.run`` (a task on build hosts over SSH) and ``remote.hosts``
(are the hosts fit to build)."""

from __future__ import annotations

import shlex

from invoke import Collection, Context

from ..console import emit
from ..errors import BuildkitError, ConfigError
from .common import CONFIG_DEFAULTS, dry, settings, split_list, task
from .doctor import print_checks


@task(
    help={
        "task": "The task to run there with its arguments, as one string: "
        "build.all or 'image.build --name api'.",
        "host": "Run on this host (a [[tool.buildkit.hosts]] name).",
        "hosts": "Run on each of these comma-separated hosts in parallel.",
        "platform": "Comma-separated platforms: for each, the first reachable host listing it "
        "(the next one is tried when a host is down).",
        "keep_workspace": "Leave the copied work tree on the host (for debugging).",
    },
    writes=True,
)
def run(
    c: Context,
    task: str,
    host: str | None = None,
    hosts: str | None = None,
    platform: str | None = None,
    keep_workspace: bool = False,
) -> None:
    """Run an ``inv`` task on remote build hosts and bring its results back.

    For each host: copy the work tree (what git tracks plus untracked, not ignored files, and
    config ``remote_include`` globs) to a fresh workspace under the host's ``workdir`` (rsync
    when both ends have it, else tar over SFTP), install this very buildkit-tasks in a virtual
    environment there (the local wheel is shipped; dependencies come from config/env
    ``wheelhouse`` first, else the host's package index), run ``inv TASK`` with this machine's
    version (git is not copied) and output streamed as ``[host] line``, then bring
    ``<output_dir>`` back to ``<output_dir>/hosts/<host>/`` with every file's checksum (and
    ``SHA256SUMS``) verified, and remove the workspace unless ``--keep-workspace``.

    Hosts come from ``[[tool.buildkit.hosts]]``; host keys are checked against config
    ``known_hosts`` (default ``~/.ssh/known_hosts``) and unknown ones refused unless
    ``accept_new_host_keys = true``. Several hosts run in parallel and one failing does not
    lose the others' results; exits non-zero when any host failed or was unreachable.
    Results are recorded in ``build-report.json`` under ``hosts``.
    """
    if task.startswith("-"):
        raise ConfigError(
            f"task: expected a task name such as build.all, got {task!r} "
            "(help: inv --help remote.run)"
        )
    from .. import remote as engine
    from .. import report
    from ..config import platform_list

    s = settings(c)
    jobs = engine.targets(s, [*split_list(host), *split_list(hosts)], platform_list(platform))
    try:
        argv = shlex.split(task)
    except ValueError as exc:
        raise ConfigError(f"task: cannot split {task!r}: {exc}") from None
    from ..buildplan import versions

    vs = versions(s)
    info = vs.project
    if dry(c):
        for job in jobs:
            names = ", ".join(h.name for h in job.candidates)
            emit(f"[{job.label}] would run on {names}: inv {shlex.join(argv)}")
        return
    results = engine.run(s, jobs, argv, vs, keep_workspace=keep_workspace)
    print("\nhosts:")
    width = max(len(r.host) for r in results)
    for r in results:
        where = r.artifacts or r.error or ""
        print(f"  {r.host:<{width}}  {r.status:<11}  {r.seconds:6.1f}s  {where}")
    report.update(s.report_path, info, hosts=[r.as_dict() for r in results])
    bad = [r for r in results if r.status != "succeeded"]
    if bad:
        raise BuildkitError(
            f"{len(bad)} of {len(results)} hosts did not succeed: "
            + "; ".join(f"{r.host}: {r.error}" for r in bad)
        )


@task(help={"host": "Check only these comma-separated hosts (default: all configured)."})
def hosts_(c: Context, host: str | None = None) -> None:
    """Check every configured build host: reachable over SSH (host key checked), architecture,
    Docker engine (26+) and buildx versions, free disk under ``workdir`` (fail below 2 GB, warn
    below 10 GB), CPUs (warn below 2), memory (warn below 2 GB), python 3.10+. Prints one line
    per check with ok/warn/fail and the fix; exits non-zero when any check fails."""
    from .. import health
    from .. import remote as engine

    s = settings(c)
    if dry(c):
        specs = [s.host(n) for n in split_list(host)] or list(s.hosts)
        for spec in specs:
            probe = shlex.join(["sh", "-c", health.probe_script(spec.workdir)])
            print(f"ssh {spec.address} {shlex.quote(probe)}")
        return
    print_checks(engine.check_hosts(s, split_list(host)))


ns = Collection("remote")
ns.add_task(run)
ns.add_task(hosts_, name="hosts")
ns.configure(CONFIG_DEFAULTS)
