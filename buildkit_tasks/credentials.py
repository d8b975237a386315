"""Registry credentials and the Docker login that uses them, without ever exposing the password.

The user comes from ``registry_user`` or ``BUILDKIT_REGISTRY_USER``; the password from
``BUILDKIT_REGISTRY_PASSWORD`` or the file ``password_file``. The password reaches
``docker login`` on its standard input only: never argv, output, logs, reports or exception
texts. Unless ``own_docker_config`` is set, the login goes to a throw-away ``DOCKER_CONFIG``
directory (mode 0700) that lives for one run and is removed afterwards: a view of the user's
own config (:func:`config_view`) holding this registry's login.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .config import Settings
from .engines import docker, helm
from .errors import BuildkitError, ConfigError
from .references import registry_host
from .runner import Runner

USER_ENV = "BUILDKIT_REGISTRY_USER"
PASSWORD_ENV = "BUILDKIT_REGISTRY_PASSWORD"
_AUTH_FAILURE = re.compile(r"\b(401|403)\b|unauthori[sz]ed|denied|incorrect username", re.I)


@dataclass(frozen=True)
class Credentials:
    """A user and password for ``host``. The password never shows in ``repr``."""

    host: str
    user: str
    password: str = field(repr=False)


def resolve(settings: Settings, env: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials for ``settings.registry``, or None when none are configured.

    Raises ConfigError when only one of user and password is given, or the password file
    cannot be read (the message names the file, never its content).
    """
    env = os.environ if env is None else env
    user = settings.registry_user or env.get(USER_ENV) or None
    password = env.get(PASSWORD_ENV) or None
    if password is None and settings.password_file is not None:
        try:
            password = settings.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"password_file {settings.password_file}: cannot read it ({exc.strerror})"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"password_file {settings.password_file}: not UTF-8 text") from None
    if user is None and password is None:
        return None
    if user is None or not password:
        missing = (
            "a user (registry_user or BUILDKIT_REGISTRY_USER)"
            if user is None
            else ("a password (BUILDKIT_REGISTRY_PASSWORD or password_file)")
        )
        raise ConfigError(f"registry credentials: {missing} is missing")
    if not settings.registry:
        raise ConfigError("registry credentials are set but [tool.buildkit] registry is empty")
    return Credentials(registry_host(settings.registry), user, password)


def login_argv(creds: Credentials) -> list[str]:
    """``docker login`` reading the password from stdin (argv holds no secret)."""
    return docker.login_argv(creds.host, creds.user)


@contextlib.contextmanager
def docker_login(
    runner: Runner, creds: Credentials | None, own_config: bool = False
) -> Iterator[dict[str, str]]:
    """Log in for the duration of the block; yields the environment commands need
    (``{"DOCKER_CONFIG": <temp dir>}``, or ``{}`` with the user's own config or no credentials).

    Raises BuildkitError at once, without retrying, when the registry refuses the login.
    """
    if creds is None:
        yield {}
        return
    tmp = None if own_config else Path(tempfile.mkdtemp(prefix="buildkit-docker-config-"))
    env = {} if tmp is None else {"DOCKER_CONFIG": str(tmp)}
    try:
        if tmp is not None:
            os.chmod(tmp, 0o700)
            if not runner.dry:
                config_view(Path(docker.config_dir(os.environ)), tmp, creds.host)
        _login(runner, login_argv(creds), creds, "registry login", env)
        yield env
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def config_view(own: Path, view: Path, host: str) -> None:
    """Make the empty directory ``view`` a Docker config directory that is the user's ``own``
    but for the credentials of ``host``, for a throw-away login: every entry of ``own`` but
    ``config.json`` is linked (docker contexts, buildx builders, CLI plugins, TLS files), so
    the run's commands see the same current context, ``--builder``/``BUILDX_BUILDER``
    builders and plugins as without credentials; ``config.json`` is ``own``'s settings
    (current context, proxies, other registries' ``auths`` and per-registry ``credHelpers``)
    without ``host``'s entries and without the default ``credsStore``, so ``docker login``
    writes the password into ``view`` only, never into the user's files or credential store.
    Registries whose credentials only that default store holds are not reachable in such a
    run (as in none before). An unreadable or invalid ``own/config.json`` counts as empty
    settings; nothing of ``own`` is ever written."""
    from .engines.registry import config_key_host  # (urllib: only for runs that log in)

    try:
        settings = json.loads((own / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        settings = {}
    if not isinstance(settings, dict):
        settings = {}
    settings.pop("credsStore", None)
    for key in ("auths", "credHelpers"):
        if isinstance(settings.get(key), dict):
            settings[key] = {k: v for k, v in settings[key].items() if config_key_host(k) != host}
    with contextlib.suppress(OSError):
        for entry in os.scandir(own):
            if not entry.name.startswith("config.json"):
                (view / entry.name).symlink_to(entry.path)
    fd = os.open(view / "config.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(settings, fh, indent=1)


def helm_login_argv(creds: Credentials, config: Path, plain_http: bool) -> list[str]:
    """``helm registry login`` reading the password from stdin into ``config``."""
    return helm.registry_login_argv(creds.host, creds.user, config, plain_http)


@contextlib.contextmanager
def helm_login(runner: Runner, creds: Credentials | None, plain_http: bool) -> Iterator[list[str]]:
    """Log helm in to ``creds.host`` for the block, in a throw-away registry config; yields
    the arguments later helm commands need (``--registry-config <file>``; nothing without
    credentials). Raises BuildkitError when the registry refuses."""
    if creds is None:
        yield []
        return
    with tempfile.TemporaryDirectory(prefix="buildkit-helm-registry-") as tmp:
        os.chmod(tmp, 0o700)
        config = Path(tmp) / "config.json"
        _login(runner, helm_login_argv(creds, config, plain_http), creds, "helm registry login")
        yield ["--registry-config", str(config)]


def _login(
    runner: Runner,
    argv: list[str],
    creds: Credentials,
    what: str,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run a ``--password-stdin`` login; raise BuildkitError at once (no retry) when refused,
    with the tool's last line (password masked) and what to check."""
    with tempfile.TemporaryDirectory(prefix="buildkit-login-") as scratch:
        log = Path(scratch) / "login.log"
        res = runner.run(argv, env=env, stdin=creds.password.encode(), log=log, check=False)
        said = log.read_text(errors="replace") if log.exists() else ""
    if res.ok or runner.dry:
        return
    reason = (said.strip().splitlines() or ["no answer"])[-1].replace(creds.password, "***")
    hint = (
        "check the user and password (BUILDKIT_REGISTRY_USER, "
        "BUILDKIT_REGISTRY_PASSWORD or password_file)"
        if is_auth_error(said)
        else "is the registry reachable?"
    )
    raise BuildkitError(f"{what} to {creds.host} as {creds.user} failed: {reason}; {hint}")


def is_auth_error(text: str) -> bool:
    """Whether a registry error text is an authentication/authorization failure."""
    return bool(_AUTH_FAILURE.search(text))
