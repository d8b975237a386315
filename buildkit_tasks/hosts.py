"""Remote build hosts: SSH connections (Fabric) that check host keys, remote commands built
with :func:`shlex.quote`, and the health checks of ``remote.hosts``.

Fabric's ``Connection`` accepts any host key (paramiko's ``AutoAddPolicy``, no ``known_hosts``):
:func:`connect` replaces that with the ``known_hosts`` file from settings and a policy that
rejects unknown keys, or with ``accept_new_host_keys = true`` records them on first use.
OpenSSH clients started for the same host (rsync, ``DOCKER_HOST=ssh://``) get the same file
and ``StrictHostKeyChecking`` through :func:`ssh_options`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shlex
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import HostSpec, Settings
from .console import emit
from .errors import ConfigError, HostError

if TYPE_CHECKING:  # fabric and paramiko are imported only by the code that connects
    from fabric import Connection

_known_hosts_lock = threading.Lock()


def fingerprint(key: Any) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a paramiko public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def trust_hint(spec: HostSpec, known_hosts: Path) -> str:
    """The command that records ``spec``'s host key in ``known_hosts`` (after a check)."""
    return (
        f"ssh-keyscan -p {spec.port} {shlex.quote(spec.hostname)} >> "
        f"{shlex.quote(str(known_hosts))}"
    )


def _policy(spec: HostSpec, settings: Settings) -> Any:
    import paramiko

    class Policy(paramiko.MissingHostKeyPolicy):
        """Unknown key: append it to ``known_hosts`` when trust-on-first-use is on, else
        refuse with the key's fingerprint and how to trust it."""

        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            if not settings.accept_new_host_keys:
                raise HostError(
                    spec.name,
                    f"unknown host key {key.get_name()} {fingerprint(key)} for "
                    f"{hostname} (not in {settings.known_hosts}); if that fingerprint is the "
                    f"host's, trust it with: {trust_hint(spec, settings.known_hosts)} "
                    "(or set accept_new_host_keys = true)",
                )
            line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
            path = settings.known_hosts
            with _known_hosts_lock:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a") as fh:
                    fh.write(line)
            client.get_host_keys().add(hostname, key.get_name(), key)
            emit(f"[{spec.name}] trusted new host key {fingerprint(key)} -> {path}")

    return Policy()


def connection(spec: HostSpec, settings: Settings) -> Connection:
    """A Fabric ``Connection`` to ``spec`` (not opened yet) that checks host keys against
    ``settings.known_hosts``, uses ``identity_file`` when given, never tries a password unless
    ``password_env`` names a set environment variable, and jumps through ``gateway``."""
    from fabric import Config, Connection

    kwargs: dict[str, Any] = {"allow_agent": True, "look_for_keys": True}
    if spec.identity_file is not None:
        kwargs["key_filename"] = str(spec.identity_file)
    if spec.password_env:
        password = os.environ.get(spec.password_env)
        if not password:
            raise HostError(
                spec.name, f"password_env: environment variable {spec.password_env} is not set"
            )
        kwargs["password"] = password
    gateway = None
    if spec.gateway:
        gateway = connection(settings.host(spec.gateway), settings)
    conn = Connection(
        spec.hostname,
        user=spec.user,
        port=spec.port,
        connect_timeout=max(1, round(settings.connect_timeout)),
        connect_kwargs=kwargs,
        gateway=gateway,
        config=Config(overrides={"run": {"in_stream": False}}),
    )
    if settings.known_hosts.is_file():
        conn.client.load_host_keys(str(settings.known_hosts))
    conn.client.set_missing_host_key_policy(_policy(spec, settings))
    return conn


def connect(spec: HostSpec, settings: Settings) -> Connection:
    """An open connection to ``spec``. Raises HostError naming the host: ``unreachable`` for
    refused connections, timeouts and unknown names; otherwise for host key and authentication
    failures (which another host would not fix)."""
    import paramiko

    conn = connection(spec, settings)
    where = f"{spec.hostname}:{spec.port}"
    try:
        conn.open()
    except HostError:
        raise
    except paramiko.BadHostKeyException as exc:
        raise HostError(
            spec.name,
            f"host key for {where} CHANGED (now {fingerprint(exc.key)}); it may be an attack. "
            f"If the change is expected: ssh-keygen -R {shlex.quote(spec.known_hosts_name)} "
            f"-f {shlex.quote(str(settings.known_hosts))}, then trust the new key",
        ) from None
    except paramiko.AuthenticationException:
        how = "password" if spec.password_env else "key"
        key = f" {spec.identity_file}" if spec.identity_file else ""
        raise HostError(
            spec.name,
            f"{how} authentication as {spec.user} on {where} failed; check identity_file{key} "
            "and the host's authorized_keys",
        ) from None
    except TimeoutError:
        raise HostError(
            spec.name,
            f"timed out after {settings.connect_timeout:g}s connecting to {where}",
            unreachable=True,
        ) from None
    except paramiko.ssh_exception.NoValidConnectionsError:
        raise HostError(
            spec.name, f"connection refused at {where} (is sshd running?)", unreachable=True
        ) from None
    except socket.gaierror:
        raise HostError(spec.name, f"cannot resolve {spec.hostname}", unreachable=True) from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise HostError(
            spec.name, f"SSH to {where} failed: {exc or exc.__class__.__name__}", unreachable=True
        ) from None
    return conn


def command(argv: Sequence[str], cwd: str | None = None, env: dict[str, str] | None = None) -> str:
    """A remote shell command line from an argv list: every part passes through
    :func:`shlex.quote` (``cd`` and ``env`` prefixes included)."""
    line = shlex.join(list(argv))
    if env:
        line = shlex.join(["env", *(f"{k}={v}" for k, v in env.items())]) + " " + line
    if cwd:
        line = f"cd {shlex.quote(cwd)} && {line}"
    return line


class LineWriter:
    """A file-like sink for Fabric's ``out_stream``: emits whole lines prefixed ``[host] ``."""

    def __init__(self, prefix: str, err: bool = False, sink: Callable[[str], None] | None = None):
        self.prefix, self.err, self._buf = prefix, err, ""
        self.sink = sink

    def write(self, data: str) -> int:
        self._buf += data
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._emit(line.rstrip("\r"))
        return len(data)

    def _emit(self, line: str) -> None:
        if self.sink:
            self.sink(line)
        emit(f"{self.prefix}{line}", err=self.err)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._buf:
            self._emit(self._buf)
            self._buf = ""


def run(
    conn: Connection,
    host: str,
    argv: Sequence[str],
    *,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    stream: str | None = None,
    check: bool = True,
    what: str | None = None,
) -> tuple[int, str]:
    """Run ``argv`` on ``conn`` (to host ``host``, named in errors); returns (exit code, stdout).

    ``stream``: a prefix; output then goes to the console line by line as it arrives.
    Otherwise output is captured. Raises HostError with the last output lines when ``check``
    and the exit code is non-zero.
    """
    line = command(argv, cwd, env)
    out = err = None
    if stream is not None:
        out, err = LineWriter(stream), LineWriter(stream, err=True)
    result = conn.run(
        line, warn=True, hide=stream is None, out_stream=out, err_stream=err, pty=False
    )
    for w in (out, err):
        if w:
            w.close()
    if check and result.exited != 0:
        tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-5:])
        raise HostError(
            host,
            f"{what or argv[0]} failed (exit {result.exited})" + (f": {tail}" if tail else ""),
        )
    return result.exited, result.stdout or ""


def ssh_options(spec: HostSpec, settings: Settings) -> list[str]:
    """``ssh`` options that give an OpenSSH client the same trust and identity as
    :func:`connect`: this ``known_hosts`` file, strict checking (``accept-new`` when
    trust-on-first-use is on), batch mode (never a password prompt), the identity file."""
    opts = [
        "-o",
        f"UserKnownHostsFile={settings.known_hosts}",
        "-o",
        "StrictHostKeyChecking=" + ("accept-new" if settings.accept_new_host_keys else "yes"),
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={max(1, round(settings.connect_timeout))}",
        "-p",
        str(spec.port),
    ]
    if spec.identity_file is not None:
        opts += ["-o", f"IdentityFile={spec.identity_file}"]
    return opts


def ssh_config_value(value: str) -> str:
    """``value`` as one double-quoted ssh_config argument. Raises ConfigError for a value a
    quote cannot hold (a ``"`` or a control character would end it and start a new line or
    option, e.g. ``ProxyCommand``)."""
    if '"' in value or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ConfigError(f"ssh option value {value!r}: quotes and control characters are refused")
    return f'"{value}"'


def probe(conn: Connection, spec: HostSpec) -> dict[str, str]:
    """:func:`buildkit_tasks.health.probe_script` facts about the host (free disk measured
    under its ``workdir``)."""
    from . import health

    _, out = run(conn, spec.name, ["sh", "-c", health.probe_script(spec.workdir)], what="probe")
    return health.parse_facts(out)


# --- the engine of a host, driven from here ------------------------------------------------------


@contextlib.contextmanager
def engine_over_ssh(spec: HostSpec, settings: Settings) -> Iterator[dict[str, str]]:
    """Drive ``spec``'s Docker engine from here for the block; yields the environment the
    docker CLI needs (give it to the Runner: ``runner.env.update(env)``): ``DOCKER_HOST=
    ssh://user@host:port`` and a ``PATH`` whose ``ssh`` is a wrapper giving OpenSSH this
    host's ``known_hosts``, strict checking, batch mode, identity and ``ProxyJump`` (the CLI
    runs plain ``ssh``, which would otherwise use only the user's own files). The SDK's
    requests go over this process's own SSH connection (:func:`connect`: the same host key and
    login checks and one-line errors). ``os.environ`` is not changed.
    """
    from .engines import docker as docker_engine

    conn = connect(spec, settings)
    real_ssh = shutil.which("ssh")
    if real_ssh is None:
        conn.close()
        raise HostError(spec.name, "the OpenSSH client (ssh) is needed for DOCKER_HOST=ssh://")
    lines = ["Host *"] + [
        f"  {opt.split('=', 1)[0]} {ssh_config_value(opt.split('=', 1)[1])}"
        for opt in ssh_options(spec, settings)[1::2]
        if "=" in opt
    ]
    if spec.gateway:
        gw = settings.host(spec.gateway)
        lines.append(f"  ProxyJump {ssh_config_value(f'{gw.user}@{gw.hostname}:{gw.port}')}")
    try:
        with tempfile.TemporaryDirectory(prefix="buildkit-ssh-") as tmp:
            config = Path(tmp) / "ssh_config"
            config.write_text("\n".join(lines) + "\n")
            wrapper = Path(tmp) / "ssh"
            wrapper.write_text(
                f'#!/bin/sh\nexec {shlex.quote(real_ssh)} -F {shlex.quote(str(config))} "$@"\n'
            )
            wrapper.chmod(0o755)
            env = {
                "DOCKER_HOST": f"ssh://{spec.user}@{spec.hostname}:{spec.port}",
                "PATH": f"{tmp}{os.pathsep}{os.environ.get('PATH', '')}",
            }
            with docker_engine.engine_at(env, conn.client):
                yield env
    finally:
        conn.close()
