"""Integration fixtures: the real engines, found or failed.

Every test here is marked ``integration``. A missing engine skips the test on a developer's
machine, but in CI (``CI`` set) it fails: CI must have installed and started every part
(``scripts/setup.sh``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import commit_all, git
from tests.integration import engines, sshhosts

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
STATE = Path(os.environ.get("BUILDKIT_SETUP_STATE", "/var/lib/buildkit-tasks-setup"))
REGISTRY = os.environ.get("BUILDKIT_TEST_REGISTRY", "127.0.0.1:5000")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def require(ok: bool, what: str) -> None:
    """Skip (developer machine) or fail (CI) when a real part is missing."""
    if ok:
        return
    message = f"{what} is not available; run scripts/setup.sh"
    if os.environ.get("CI"):
        pytest.fail(f"CI: {message}", pytrace=False)
    pytest.skip(message)


def _ok(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    """The engine, checked once per session. At the session's end the image names the suite
    made are removed again (those on a loopback registry, ``127.0.0.1:5000/...``,
    ``localhost:1/...``, that were not there at its start): every run uses names of its own,
    and a developer's engine otherwise gained ~180 names and ~260 MB per run. Images left
    without a name during the session (a tag moved to a rebuild) go too."""
    require(
        _ok(["docker", "info"]) and _ok(["docker", "buildx", "version"]),
        "Docker Engine with buildx",
    )
    before = set(_loopback_names()) | set(_dangling_ids())
    yield
    for made in (_loopback_names(), _dangling_ids()):  # names first: their images may dangle
        made = sorted(set(made) - before)
        for i in range(0, len(made), 200):
            subprocess.run(["docker", "image", "rm", *made[i : i + 200]], capture_output=True)


def _dangling_ids() -> list[str]:
    """The IDs of the engine's images that have no name left (a tag moved to a rebuild)."""
    res = subprocess.run(
        ["docker", "images", "--filter", "dangling=true", "--quiet", "--no-trunc"],
        capture_output=True,
        text=True,
    )
    return res.stdout.split()


def _loopback_names() -> list[str]:
    """The engine's image names (``repository:tag``) whose registry is on loopback."""
    from buildkit_tasks.references import is_loopback, try_parse

    res = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
    )
    names = []
    for line in res.stdout.split():
        ref = try_parse(line)
        if ref is not None and ref.tag and is_loopback(ref.domain):
            names.append(line)
    return names


def engine_kills_starting_steps() -> bool:
    """Whether the engine's BuildKit kills a RUN step whose cancellation arrived before runc
    reported the step's process (moby/buildkit#5106, BuildKit 0.15, Docker Engine 27.1+).
    Older engines let such a step run to its end although its build was cancelled."""
    out = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout
    parts = [int(p) for p in out.split("+")[0].split(".")[:2] if p.isdigit()]
    return tuple(parts) >= (27, 1)


def boot_seconds() -> float:
    """Now, on the clock ``/proc/<pid>/stat`` start times count on (seconds since boot)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _started_at(pid: int) -> float | None:
    """Start of ``pid`` in seconds since boot (10 ms steps), None when it has ended."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
    return ticks / os.sysconf("SC_CLK_TCK")


def run_steps_left(pattern: str, signalled: float, wait: float = 15.0) -> list[str]:
    """RUN-step processes whose command line holds ``pattern`` still running ``wait`` seconds
    from now (the engine cancels a step when its client goes; allow it time under load).

    ``signalled``: when the Ctrl-C was sent (:func:`boot_seconds`). A step whose process
    started after that on an engine without moby/buildkit#5106 is that engine's race, not
    ours (its cancellation came before runc reported the step): it is killed and named on
    stdout, not returned. Every other survivor is returned as ``pid args``."""
    deadline = time.monotonic() + wait
    while True:
        ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True)
        left = [ln.strip() for ln in ps.stdout.splitlines() if pattern in ln and "ps -eo" not in ln]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    ours = []
    for line in left:
        pid = int(line.split()[0])
        started = _started_at(pid)
        if started is None:
            continue
        if started >= signalled - 0.02 and not engine_kills_starting_steps():
            print(f"engine race (moby/buildkit#5106): {line} started after the Ctrl-C; killed")
            subprocess.run(["kill", "-KILL", str(pid)], check=False)
            continue
        ours.append(line)
    return ours


@pytest.fixture(scope="session")
def helm_bin() -> None:
    require(_ok(["helm", "version"]), "helm")


def cosign_key_pairs(base: Path, password: str, *owners: str) -> dict[str, Path]:
    """A cosign key pair per owner (``cosign generate-key-pair`` under ``base/<owner>``,
    protected by ``password``): owner -> its directory (``cosign.key``, ``cosign.pub``).
    Needs cosign (scripts/setup.sh installs it)."""
    require(shutil.which("cosign") is not None, "cosign (scripts/setup.sh installs it)")
    out = {}
    for owner in owners:
        d = base / owner
        d.mkdir()
        subprocess.run(
            ["cosign", "generate-key-pair"], cwd=d, check=True, capture_output=True,
            env={**os.environ, "COSIGN_PASSWORD": password},
        )  # fmt: skip
        out[owner] = d
    return out


@pytest.fixture(scope="session")
def registry() -> str:
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5) as resp:
            ok = resp.status == 200
    except OSError:
        ok = False
    require(ok, f"registry on {REGISTRY}")
    return REGISTRY


def tags_in(registry: str, repository: str) -> list[str] | None:
    """The registry's tags of ``repository``, None when it has never heard of it."""
    try:
        with urllib.request.urlopen(
            f"http://{registry}/v2/{repository}/tags/list", timeout=10
        ) as resp:
            return json.load(resp).get("tags") or []
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


@pytest.fixture(scope="session")
def busybox() -> dict[str, Path]:
    found = {a: STATE / "busybox" / a / "busybox" for a in ("amd64", "arm64")}
    require(all(p.is_file() for p in found.values()), f"static busybox under {STATE}/busybox")
    return found


@dataclass(frozen=True)
class AuthRegistry:
    """A registry on loopback that wants a user and password (htpasswd, bcrypt)."""

    host: str
    user: str
    password: str
    log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    require(
        bool(shutil.which("docker-registry") and shutil.which("htpasswd")),
        "docker-registry and htpasswd (apache2-utils)",
    )
    d = tmp_path_factory.mktemp("auth-registry")
    user, password = "ci-pusher", f"s3cret-{uuid.uuid4().hex}"
    htpasswd = subprocess.run(
        ["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=True
    ).stdout
    (d / "htpasswd").write_text(htpasswd)
    host = f"127.0.0.1:{_free_port()}"
    (d / "config.yml").write_text(
        "version: 0.1\nlog: {level: info}\n"
        f"storage: {{filesystem: {{rootdirectory: {d / 'data'}}}}}\n"
        f"http: {{addr: {host}}}\n"
        f"auth: {{htpasswd: {{realm: test, path: {d / 'htpasswd'}}}}}\n"
    )
    log = d / "registry.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(d / "config.yml")], stdout=fh, stderr=subprocess.STDOUT
        )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://{host}/v2/", timeout=1)
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail(f"authenticated registry on {host} did not start: {log.read_text()}")
        yield AuthRegistry(host, user, password, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class Project:
    """A copy of examples/ in its own git repository, tagged v2.3.0."""

    path: Path

    def inv(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=900,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"inv {' '.join(args)} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
            )
        return res

    def report(self) -> dict:
        return json.loads((self.path / "dist" / "build-report.json").read_text())

    def commit(self, message: str = "change") -> str:
        return commit_all(self.path, message)

    def configure(self, *lines: str) -> str:
        """Add ``lines`` (``key = value``) at the top of ``[tool.buildkit]`` and commit."""
        pyproject = self.path / "pyproject.toml"
        head = "[tool.buildkit]\n"
        pyproject.write_text(
            pyproject.read_text().replace(head, head + "".join(f"{x}\n" for x in lines), 1)
        )
        return self.commit("configure " + ", ".join(lines))


@pytest.fixture
def project(
    tmp_path: Path, docker_engine: None, helm_bin: None, busybox: dict[str, Path]
) -> Project:
    dest = tmp_path / "acme"
    shutil.copytree(
        EXAMPLES,
        dest,
        ignore=shutil.ignore_patterns(
            "dist", "busybox-*", "__pycache__", ".pytest_cache", ".ruff_cache"
        ),
    )
    for arch, path in busybox.items():
        shutil.copy2(path, dest / "images" / "base" / f"busybox-{arch}")
    # A build arg unique to this test gives its images input keys no other test shares, so
    # each test starts from a cold cache (images of other tests are not "cached" here).
    pyproject = dest / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'context = "images/base"\n',
            f'context = "images/base"\nbuild_args = {{ TEST_RUN = "{uuid.uuid4().hex}" }}\n',
            1,
        )
    )
    commit_all(dest, "example project")
    git(dest, "tag", "-a", "v2.3.0", "-m", "v2.3.0")
    return Project(dest)


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=600)
    if check and res.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {res.stderr}")
    return res


@pytest.fixture(scope="session")
def ssh_hosts(
    tmp_path_factory: pytest.TempPathFactory, docker_engine: None
) -> Iterator[sshhosts.SshHosts]:
    """Two build hosts: sshd on 127.0.0.2:2222 ("a") and 127.0.0.3:2222 ("b")."""
    require(sshhosts.available(), "sshd and the bkbuild account (scripts/setup.sh, as root)")
    require((STATE / "wheelhouse").is_dir(), f"the wheelhouse {STATE}/wheelhouse")
    hosts = sshhosts.start(tmp_path_factory.mktemp("ssh"), {"a": "127.0.0.2", "b": "127.0.0.3"})
    try:
        yield hosts
    finally:
        sshhosts.stop(hosts)


def with_hosts(
    project: Project,
    hosts: sshhosts.SshHosts,
    names: list[str],
    *,
    trusted: list[str] | None = None,
    top: str = "",
    host_extra: str = "",
) -> Path:
    """Add ``[[tool.buildkit.hosts]]`` for ``names`` to the project, a known_hosts file trusting
    ``trusted`` (default: every started host) and the setup wheelhouse; commit. Returns the
    known_hosts path."""
    known = project.path.parent / "known_hosts"
    trusted = list(hosts.hosts) if trusted is None else trusted
    known.write_text("".join(hosts.hosts[n].known_hosts_line for n in trusted))
    pyproject = project.path / "pyproject.toml"
    text = pyproject.read_text().replace(
        "[tool.buildkit]\n",
        f'[tool.buildkit]\nknown_hosts = "{known}"\nwheelhouse = "{STATE / "wheelhouse"}"\n{top}',
        1,
    )
    pyproject.write_text(text + "\n" + hosts.toml(names, extra=host_extra))
    project.commit("build hosts")
    return known


@pytest.fixture(scope="module")
def second_engine(
    docker_engine: None, busybox: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[engines.Engine]:
    """A second, separate dockerd (tests/integration/engines.py) for the module's tests."""
    require(shutil.which("nsenter") is not None, "nsenter (util-linux)")
    require(shutil.which("ip") is not None, "ip (iproute2)")
    engine = engines.start()
    try:
        yield engine
    finally:
        engines.stop(engine)
        # the first engine must still run RUN steps (a second dockerd once took its docker0)
        ctx = tmp_path_factory.mktemp("first-engine-check")
        shutil.copy2(busybox["amd64"], ctx / "busybox")
        (ctx / "Dockerfile").write_text(
            'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "true"]\n'
        )
        docker("buildx", "build", "--no-cache", "--platform", "linux/amd64", str(ctx))
