"""Running a task on remote build hosts: copy the work tree to a fresh workspace, install this
buildkit-tasks there, run ``inv <task>`` with its output streamed line by line, bring
``<output_dir>`` back verified, and clean up.

Remote layout under the host's ``workdir`` (made absolute on first contact)::

    venvs/<version>-<key>/    a virtual environment per buildkit-tasks build (kept, reused)
    wheels/<key>/             the shipped buildkit-tasks wheel; wheels/deps/ the wheelhouse
    runs/<run id>/src/        the copied project; runs/<run id>/version.json the local version
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import buildplan, health, hosts, report
from .buildplan import Versions
from .config import HostSpec, Settings
from .console import emit
from .engines import git
from .errors import BuildkitError, ConfigError, HostError
from .fsutil import cache_home, sha256_file

if TYPE_CHECKING:
    from fabric import Connection

PACKAGE = "buildkit-tasks"
VERSIONS_FILE_ENV = buildplan.VERSIONS_FILE_ENV
_SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET")


@dataclass
class HostRun:
    """What one host did: ``status`` succeeded | failed | unreachable; ``exit_code`` of the
    remote task (None when it never ran); ``artifacts`` the local directory its
    ``<output_dir>`` was brought back to (verified); ``tried`` every host attempted in order."""

    host: str
    status: str
    seconds: float = 0.0
    exit_code: int | None = None
    artifacts: str | None = None
    files: int = 0
    error: str | None = None
    tried: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Wheel:
    """The buildkit-tasks to install on hosts: a wheel file, or (``path`` None) the
    requirement ``buildkit-tasks==version`` from the host's index. ``key`` names its content."""

    path: Path | None
    version: str
    key: str


# --- what is copied -----------------------------------------------------------------------------


def workspace_files(settings: Settings) -> list[str]:
    """Paths (relative to the project root) a remote run copies: what git tracks plus untracked
    files it does not ignore, plus ignored files matching ``remote_include`` globs; never
    ``output_dir``. Without git: every file except ``output_dir`` and dot-directories."""
    root = settings.root
    listed = git.output(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed is not None:
        names = [n for n in listed.split("\0") if n]
    else:
        names = [
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if not any(part.startswith(".") for part in p.relative_to(root).parts)
        ]
    for pattern in settings.remote_include:
        names += [p.relative_to(root).as_posix() for p in root.glob(pattern)]
    out_rel = _output_rel(settings)
    keep = []
    for n in dict.fromkeys(names):
        p = root / n
        if (n == out_rel or n.startswith(out_rel + "/")) or not (p.is_file() or p.is_symlink()):
            continue  # the output, directories, and tracked files deleted from the work tree
        keep.append(n)
    return sorted(keep)


def _output_rel(settings: Settings) -> str:
    try:
        return settings.output_dir.resolve().relative_to(settings.root).as_posix()
    except ValueError:
        raise ConfigError(
            f"output_dir: remote runs need it inside the project ({settings.output_dir})"
        ) from None


# --- what is installed --------------------------------------------------------------------------


def _cache_dir() -> Path:
    return cache_home() / "wheels"


def _source_dir() -> Path | None:
    """The source checkout this buildkit-tasks runs from (an editable install), if any."""
    pkg = Path(__file__).resolve().parent
    src = pkg.parent
    pyproject = src / "pyproject.toml"
    if pyproject.is_file() and f'name = "{PACKAGE}"' in pyproject.read_text("utf-8"):
        return src
    return None


def _tree_key(src: Path) -> str:
    digest = hashlib.sha256()
    files = [src / "pyproject.toml"]
    for top in ("buildkit_tasks", "templates"):
        files += [p for p in (src / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for p in sorted(files):
        digest.update(p.relative_to(src).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(p.read_bytes()).digest())
    return digest.hexdigest()[:12]


def local_wheel(settings: Settings) -> Wheel:
    """The wheel of the buildkit-tasks running here.

    From a source checkout it is built once per source content (``pip wheel``; build
    requirements from ``wheelhouse`` when set) and cached under
    ``~/.cache/buildkit-tasks/wheels/``. Installed from a wheel (the normal case), it is the
    wheel of this version in ``wheelhouse`` when there is one, else a wheel made again from
    the installed files (:func:`_wheel_from_installed`); only an installation pip did not
    make falls back to the release from the host's package index.
    """
    version = importlib.metadata.version(PACKAGE)
    src = _source_dir()
    if src is not None:
        key = _tree_key(src)
        out = _cache_dir() / key
        found = sorted(out.glob("buildkit_tasks-*.whl")) if out.is_dir() else []
        if not found:
            _cache_dir().mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix="wheel-", dir=_cache_dir()))
            try:
                # Build requirements come from the wheelhouse when there is one (no network).
                index = (
                    ["--no-index", "--find-links", str(settings.wheelhouse)]
                    if settings.wheelhouse is not None
                    else []
                )
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "wheel",
                        "--no-deps",
                        *index,
                        "-q",
                        "--disable-pip-version-check",
                        "-w",
                        str(tmp),
                        str(src),
                    ],
                    capture_output=True,
                    text=True,
                )
                if proc.returncode != 0:
                    tail = [x for x in proc.stderr.splitlines() if "rror" in x][-1:] or ["?"]
                    raise BuildkitError(
                        f"building the {PACKAGE} wheel from {src} failed: {tail[0].strip()}"
                    )
                if not out.exists():
                    tmp.rename(out)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            found = sorted(out.glob("buildkit_tasks-*.whl"))
        return Wheel(found[0], version, f"{version}-{key}")
    if settings.wheelhouse is not None:
        found = sorted(settings.wheelhouse.glob(f"buildkit_tasks-{_wheel_version(version)}-*.whl"))
        if found:
            return Wheel(found[0], version, f"{version}-{sha256_file(found[0])[:12]}")
    rebuilt = _wheel_from_installed()
    if rebuilt is not None:
        return Wheel(rebuilt, version, f"{version}-{sha256_file(rebuilt)[:12]}")
    return Wheel(None, version, f"{version}-release")


def _wheel_version(version: str) -> str:
    """``version`` as a wheel file name spells it (PEP 427: ``-`` becomes ``_``)."""
    return version.replace("-", "_")


_NOT_SHIPPED = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def _wheel_from_installed() -> Path | None:
    """A wheel of the installed buildkit-tasks, made again from the files its ``RECORD``
    lists (what pip installed from the original wheel, less the console scripts, which pip
    makes again from ``entry_points.txt``, and byte code). Cached per ``RECORD`` content
    under ``~/.cache/buildkit-tasks/wheels/``. None when the installation has no
    ``RECORD`` (not installed by pip)."""
    import base64
    import zipfile

    dist = importlib.metadata.distribution(PACKAGE)
    record = dist.read_text("RECORD")
    if not record or not dist.files:
        return None
    version = dist.version
    out = _cache_dir() / f"installed-{hashlib.sha256(record.encode()).hexdigest()[:12]}"
    wheel = out / f"buildkit_tasks-{_wheel_version(version)}-py3-none-any.whl"
    if wheel.is_file():
        return wheel
    files = [
        f
        for f in dist.files
        if not f.parts[0] == ".."
        and "__pycache__" not in f.parts
        and not (f.parts[0].endswith(".dist-info") and f.name in _NOT_SHIPPED)
    ]
    info = next((f.parts[0] for f in dist.files if f.parts[0].endswith(".dist-info")), None)
    if info is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{wheel.name}.{os.getpid()}.tmp"
    lines = []
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(files, key=str):
            data = Path(str(dist.locate_file(f))).read_bytes()
            zf.writestr(f.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            lines.append(f"{f.as_posix()},sha256={digest.decode()},{len(data)}")
        lines.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(lines) + "\n")
    tmp.replace(wheel)
    return wheel


# --- one host -----------------------------------------------------------------------------------


class HostSession:
    """One run on one host: connect, copy, install, run, fetch, clean up."""

    def __init__(self, settings: Settings, spec: HostSpec, run_id: str) -> None:
        self.s, self.spec, self.run_id = settings, spec, run_id
        self.conn: Connection | None = None
        self.workdir = ""
        self.step = "connect"  # what the run is doing, for errors when the host goes away
        self._sftp: Any = None

    def sftp(self) -> Any:
        """The session's SFTP client (opened once). Raises HostError when the host's sshd
        offers no SFTP subsystem."""
        assert self.conn is not None
        if self._sftp is None:
            try:
                self._sftp = self.conn.sftp()
            except Exception as exc:  # paramiko.SSHException("Channel closed."), EOFError
                raise HostError(
                    self.spec.name,
                    f"no SFTP ({exc.__class__.__name__}: {exc or 'channel closed'}); the host's "
                    "sshd needs 'Subsystem sftp internal-sftp' (or sftp-server) in sshd_config",
                ) from None
        return self._sftp

    # helpers
    def sh(self, script: str, *args: str, what: str, check: bool = True) -> tuple[int, str]:
        """Run ``script`` with ``sh -c`` and ``args`` as "$1"...: values never touch the script
        text, so nothing user-controlled is parsed by the remote shell."""
        assert self.conn is not None
        return hosts.run(
            self.conn, self.spec.name, ["sh", "-c", script, "sh", *args], what=what, check=check
        )

    @property
    def run_dir(self) -> str:
        return f"{self.workdir}/runs/{self.run_id}"

    def open(self) -> dict[str, str]:
        self.conn = hosts.connect(self.spec, self.s)
        facts = hosts.probe(self.conn, self.spec)
        _, out = self.sh('mkdir -p "$1" && cd "$1" && pwd', self.spec.workdir, what="workdir")
        self.workdir = out.strip().splitlines()[-1]
        self.sh('mkdir -p "$1/src"', self.run_dir, what="workspace")
        return facts

    def close(self, keep_workspace: bool) -> None:
        if self.conn is None:
            return
        try:
            if not keep_workspace and self.workdir:
                self.sh('rm -rf "$1"', self.run_dir, what="cleanup", check=False)
            elif self.workdir:
                emit(f"[{self.spec.name}] workspace kept: {self.run_dir}")
        except Exception:  # the host went away: nothing more to clean
            pass
        finally:
            self.conn.close()

    # steps
    def copy(self, files: Sequence[str], use_rsync: bool) -> str:
        """Copy ``files`` into ``<run>/src``: rsync over OpenSSH when allowed, else a tar over
        SFTP. Returns the method used."""
        if use_rsync:
            self._rsync(files)
            return "rsync"
        self._tar_sftp(files)
        return "tar+sftp"

    def _rsync(self, files: Sequence[str]) -> None:
        ssh = shlex.join(["ssh", *hosts.ssh_options(self.spec, self.s)])
        target = f"{self.spec.user}@{self.spec.hostname}:{self.run_dir}/src/"
        proc = subprocess.run(
            ["rsync", "-a", "--from0", "--files-from=-", "-e", ssh, "./", target],
            cwd=self.s.root,
            input="\0".join(files).encode(),
            capture_output=True,
        )
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise HostError(self.spec.name, f"rsync failed (exit {proc.returncode}): {tail[0]}")

    def _tar_sftp(self, files: Sequence[str]) -> None:
        assert self.conn is not None
        with tempfile.NamedTemporaryFile(suffix=".tar.gz") as tmp:
            with tarfile.open(fileobj=tmp, mode="w:gz", compresslevel=1) as tar:
                for name in files:
                    tar.add(self.s.root / name, arcname=name, recursive=False)
            tmp.flush()
            remote = f"{self.run_dir}/src.tar.gz"
            self.sftp().put(tmp.name, remote)
        self.sh(
            'tar -xzf "$1/src.tar.gz" -C "$1/src" && rm -f "$1/src.tar.gz"',
            self.run_dir,
            what="unpack",
        )

    def install(self, wheel: Wheel) -> str:
        """Make sure ``venvs/<key>`` holds this buildkit-tasks; returns its path."""
        assert self.conn is not None
        venv = f"{self.workdir}/venvs/{wheel.key}"
        code, out = self.sh('cat "$1/.buildkit-key" 2>/dev/null', venv, what="venv", check=False)
        if code == 0 and out.strip() == wheel.key:
            return venv
        emit(f"[{self.spec.name}] installing {PACKAGE} {wheel.version} into {venv}")
        sftp = self.sftp()
        wheel_dir = f"{self.workdir}/wheels/{wheel.key.rsplit('-', 1)[-1]}"
        deps_dir = f"{self.workdir}/wheels/deps"
        self.sh('mkdir -p "$1" "$2"', wheel_dir, deps_dir, what="wheels")
        if wheel.path is not None:
            remote_wheel = f"{wheel_dir}/{wheel.path.name}"
            _put_atomic(sftp, wheel.path, remote_wheel)
        else:
            remote_wheel = f"{PACKAGE}=={wheel.version}"
        offline = False
        if self.s.wheelhouse is not None and self.s.wheelhouse.is_dir():
            present = set(sftp.listdir(deps_dir))
            for w in sorted(self.s.wheelhouse.glob("*.whl")):
                if w.name not in present and not w.name.startswith("buildkit_tasks-"):
                    _put_atomic(sftp, w, f"{deps_dir}/{w.name}")
            offline = True
        script = (
            'rm -rf "$1" && python3 -m venv "$1" && '
            '"$1/bin/pip" install -q --disable-pip-version-check $4 --find-links "$2" "$3" 2>&1 && '
            'printf "%s\\n" "$5" > "$1/.buildkit-key"'
        )
        attempts = ["--no-index", ""] if offline else [""]
        last = ""
        for flag in attempts:
            code, out = self.sh(
                script,
                venv,
                deps_dir,
                remote_wheel,
                flag,
                wheel.key,
                what="pip install",
                check=False,
            )
            if code == 0:
                return venv
            last = out
        errors = [ln.strip() for ln in last.splitlines() if "ERROR" in ln or "rror:" in ln]
        said = errors[-1] if errors else (last.strip().splitlines() or ["pip said nothing"])[-1]
        raise HostError(
            self.spec.name, f"installing {PACKAGE} {wheel.version} failed: pip: {said[-300:]}"
        )

    def run_task(self, venv: str, task_argv: Sequence[str], versions: Versions) -> int:
        """Write this run's versions for the remote build (the host's copy has no git
        history), then ``inv <task_argv>`` in the workspace with output streamed as
        ``[host] line``. Returns the exit code."""
        assert self.conn is not None
        with self.sftp().open(f"{self.run_dir}/versions.json", "w") as fh:
            fh.write(json.dumps(versions.as_dict()))
        env = {
            k: v
            for k, v in os.environ.items()
            if k.startswith("INVOKE_BUILDKIT_") and not any(w in k for w in _SECRET_WORDS)
        }
        env.update({VERSIONS_FILE_ENV: f"{self.run_dir}/versions.json", "PYTHONUNBUFFERED": "1"})
        if os.environ.get("CI"):
            env["CI"] = os.environ["CI"]
        if self.spec.max_jobs:
            env["INVOKE_BUILDKIT_PARALLEL"] = str(self.spec.max_jobs)
        code, _ = hosts.run(
            self.conn,
            self.spec.name,
            [f"{venv}/bin/inv", *task_argv],
            cwd=f"{self.run_dir}/src",
            env=env,
            stream=f"[{self.spec.name}] ",
            check=False,
        )
        return code

    def fetch(self, output_rel: str, dest: Path) -> int:
        """Bring ``<run>/src/<output_rel>`` back to ``dest``: checksums listed on the host, a
        tar over SFTP, every file verified (and ``SHA256SUMS`` when present) before ``dest`` is
        replaced in one rename. Nothing partial is left locally. Returns the file count: 0,
        with ``dest`` left alone, when the task wrote no ``output_rel`` (``version.show``)."""
        assert self.conn is not None
        out_dir = f"{self.run_dir}/src/{output_rel}"
        code, listing = self.sh(
            '[ -d "$1" ] || exit 3; cd "$1" && find . -type f -print0 | xargs -0 -r sha256sum',
            out_dir,
            what="checksums",
            check=False,
        )
        if code == 3:  # the task wrote no output directory (version.show): nothing to fetch
            return 0
        if code != 0:
            raise HostError(self.spec.name, f"the task left no {output_rel}/ to bring back")
        expected = {}
        for line in listing.splitlines():
            digest, _, name = line.partition("  ")
            expected[os.path.normpath(name)] = digest
        self.sh('tar -cf "$2" -C "$1" .', out_dir, f"{self.run_dir}/out.tar", what="tar")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            tar_path = tmp / ".out.tar"
            self.sftp().get(f"{self.run_dir}/out.tar", str(tar_path))
            unpacked = tmp / "out"
            _extract(tar_path, unpacked)
            tar_path.unlink()
            verify_tree(unpacked, expected, self.spec.name)
            old = None
            if dest.exists():
                old = dest.parent / f".{dest.name}.old-{self.run_id}"
                dest.rename(old)
            unpacked.rename(dest)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return len(expected)


def _put_atomic(sftp: Any, local: Path, remote: str) -> None:
    sftp.put(str(local), remote + ".part")
    sftp.posix_rename(remote + ".part", remote)


def _extract(tar_path: Path, dest: Path) -> None:
    """Unpack regular files and directories only, never outside ``dest``."""
    dest.mkdir()
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            name = os.path.normpath(m.name)
            if name == ".":
                continue
            if name.startswith(("/", "..")) or not (m.isfile() or m.isdir()):
                raise BuildkitError(f"refusing archive member {m.name!r} from the host")
            target = dest / name
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            assert src is not None
            with src, target.open("wb") as fh:
                shutil.copyfileobj(src, fh)
            os.chmod(target, m.mode & 0o755)


def verify_tree(root: Path, expected: dict[str, str], host: str) -> None:
    """Check that ``root`` holds exactly the files in ``expected`` (relative path -> sha256)
    with those digests, and that its ``SHA256SUMS`` (when present) holds. Raises HostError."""
    found = {
        os.path.normpath(p.relative_to(root).as_posix()) for p in root.rglob("*") if p.is_file()
    }
    if found != set(expected):
        missing = sorted(set(expected) - found)[:3]
        extra = sorted(found - set(expected))[:3]
        raise HostError(host, f"transfer incomplete: missing {missing}, unexpected {extra}")
    for name, digest in expected.items():
        if sha256_file(root / name) != digest:
            raise HostError(host, f"transfer corrupted {name}: checksum differs from the host's")
    bad = report.verify_checksums(root)
    if bad:
        raise HostError(host, f"{report.SUMS} does not hold for {', '.join(bad[:3])}")


# --- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where one job runs: ``candidates`` tried in order while they are unreachable; ``label``
    is what the user asked for (a host name or a platform)."""

    label: str
    candidates: tuple[HostSpec, ...]


def targets(settings: Settings, names: Sequence[str], platforms: Sequence[str]) -> list[Target]:
    """Jobs for ``--host``/``--hosts`` names (no fallback) and ``--platform`` values (every host
    listing the platform, in config order). Raises ConfigError for unknown names or platforms
    no host builds."""
    out = [Target(n, (settings.host(n),)) for n in names]
    for p in platforms:
        cands = tuple(h for h in settings.hosts if p in h.platforms)
        if not cands:
            raise ConfigError(f"--platform: no host in [[tool.buildkit.hosts]] builds {p}")
        out.append(Target(p, cands))
    if not out:
        raise ConfigError("remote.run: name a host (--host/--hosts) or a platform (--platform)")
    return out


def run(
    settings: Settings,
    jobs: Sequence[Target],
    task_argv: Sequence[str],
    versions: Versions,
    *,
    keep_workspace: bool = False,
    on_done: Callable[[HostRun], None] | None = None,
) -> list[HostRun]:
    """Run ``inv <task_argv>`` for every job in parallel (one thread per job). Each host's
    ``<output_dir>`` comes back to ``<output_dir>/hosts/<host>/``. A failing host does not
    stop the others. Returns one HostRun per job, in job order."""
    if not task_argv:
        raise ConfigError("remote.run: name the task to run, e.g. build.all")
    output_rel = _output_rel(settings)
    files = workspace_files(settings)
    wheel = local_wheel(settings)
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    busy: set[str] = set()
    lock = threading.Lock()

    def one(job: Target) -> HostRun:
        tried: list[str] = []
        last: HostError | None = None
        for spec in job.candidates:
            with lock:
                if spec.name in busy and len(job.candidates) > 1:
                    continue
                busy.add(spec.name)
            tried.append(spec.name)
            try:
                result = _run_one(
                    settings,
                    spec,
                    run_id,
                    files,
                    wheel,
                    task_argv,
                    versions,
                    output_rel,
                    keep_workspace,
                )
            except HostError as exc:
                last = exc
                if exc.unreachable:
                    emit(f"[{spec.name}] unreachable: {exc}", err=True)
                    continue
                result = HostRun(spec.name, "failed", error=str(exc))
            result.tried = tried
            if on_done:
                on_done(result)
            return result
        result = HostRun(
            tried[-1] if tried else job.label,
            "unreachable",
            error=str(last) if last else f"no free host for {job.label}",
            tried=tried,
        )
        if on_done:
            on_done(result)
        return result

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(one, jobs))


def _run_one(
    settings: Settings,
    spec: HostSpec,
    run_id: str,
    files: Sequence[str],
    wheel: Wheel,
    task_argv: Sequence[str],
    versions: Versions,
    output_rel: str,
    keep_workspace: bool,
) -> HostRun:
    start = time.monotonic()
    session = HostSession(settings, spec, run_id)
    try:
        return _steps(session, files, wheel, task_argv, versions, output_rel, start)
    except HostError:
        raise
    except (OSError, EOFError, _ssh_errors()) as exc:  # the host went away mid-step
        raise HostError(
            spec.name, f"connection lost during {session.step} ({exc.__class__.__name__}: {exc})"
        ) from None
    finally:
        session.close(keep_workspace)


def _ssh_errors() -> type[Exception]:
    import paramiko

    return paramiko.SSHException


def _steps(
    session: HostSession,
    files: Sequence[str],
    wheel: Wheel,
    task_argv: Sequence[str],
    versions: Versions,
    output_rel: str,
    start: float,
) -> HostRun:
    """The steps of one host run on an open ``session``: copy, install, run, fetch (each
    named in ``session.step`` for the error should the host go away)."""
    settings, spec = session.s, session.spec
    facts = session.open()
    can_rsync = bool(
        facts.get("rsync")
        and shutil.which("rsync")
        and shutil.which("ssh")
        and not spec.gateway
        and not spec.password_env
    )
    if spec.transfer == "rsync" and not can_rsync:
        raise HostError(
            spec.name,
            "transfer = rsync needs rsync on both ends and no gateway or password_env",
        )
    use_rsync = can_rsync and spec.transfer != "sftp"
    session.step = "the copy of the workspace"
    how = session.copy(files, use_rsync)
    emit(f"[{spec.name}] copied {len(files)} files ({how}) to {session.run_dir}/src")
    session.step = "the install of buildkit-tasks"
    venv = session.install(wheel)
    emit(f"[{spec.name}] $ inv {shlex.join(task_argv)}")
    session.step = "the task"
    code = session.run_task(venv, task_argv, versions)
    dest = settings.output_dir / "hosts" / spec.name
    session.step = f"the transfer of {output_rel}/ back"
    try:
        count = session.fetch(output_rel, dest)
    except HostError as exc:
        if code == 0:
            raise
        return HostRun(
            spec.name,
            "failed",
            time.monotonic() - start,
            code,
            error=f"task exited {code}; {exc}",
        )
    status = "succeeded" if code == 0 else "failed"
    return HostRun(
        spec.name,
        status,
        time.monotonic() - start,
        code,
        str(dest),
        count,
        error=None if code == 0 else f"task exited {code}",
    )


def check_hosts(settings: Settings, names: Sequence[str] = ()) -> list[health.Check]:
    """``remote.hosts``: connect to each host (all, or ``names``) in parallel and judge it."""
    specs = [settings.host(n) for n in names] if names else list(settings.hosts)
    if not specs:
        raise ConfigError("remote.hosts: no [[tool.buildkit.hosts]] configured")

    def one(spec: HostSpec) -> list[health.Check]:
        try:
            conn = hosts.connect(spec, settings)
        except HostError as exc:
            fix = (
                f"start sshd on {spec.hostname}:{spec.port} or fix the address"
                if exc.unreachable
                else ""  # the message itself says what to do
            )
            return [health.Check(spec.name, "reachable", "fail", str(exc), fix)]
        try:
            reach = health.Check(spec.name, "reachable", "ok", spec.address)
            facts = hosts.probe(conn, spec)
            return [reach, *health.judge(spec.name, facts, spec.workdir, spec.platforms)]
        except HostError as exc:
            return [health.Check(spec.name, "probe", "fail", str(exc))]
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        return [c for group in pool.map(one, specs) for c in group]
