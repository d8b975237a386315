from pathlib import Path

import pytest

from buildkit_tasks import config, credentials, images
from buildkit_tasks.errors import ConfigError


def settings(tmp_path: Path, extra: str = "") -> config.Settings:
    (tmp_path / "pyproject.toml").write_text(
        f"[tool.buildkit]\nregistry = 'reg.example:5000/acme'\n{extra}"
    )
    return config.load(tmp_path)


def test_env_gives_user_and_password(tmp_path: Path) -> None:
    creds = credentials.resolve(
        settings(tmp_path), {"BUILDKIT_REGISTRY_USER": "u", "BUILDKIT_REGISTRY_PASSWORD": "pw"}
    )
    assert creds == credentials.Credentials("reg.example:5000", "u", "pw")
    assert "pw" not in repr(creds)
    argv = credentials.login_argv(creds)
    assert argv == ["docker", "login", "--username", "u", "--password-stdin", "reg.example:5000"]
    assert "pw" not in argv


def test_config_user_and_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("from-file\n")
    s = settings(tmp_path, "registry_user = 'cfg'\npassword_file = 'pw.txt'\n")
    assert credentials.resolve(s, {}) == credentials.Credentials(
        "reg.example:5000", "cfg", "from-file"
    )
    # the env password wins over the file
    assert credentials.resolve(s, {"BUILDKIT_REGISTRY_PASSWORD": "env"}).password == "env"


def test_none_configured_is_none(tmp_path: Path) -> None:
    assert credentials.resolve(settings(tmp_path), {}) is None


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        ("", {"BUILDKIT_REGISTRY_USER": "u"}, "a password"),
        ("", {"BUILDKIT_REGISTRY_PASSWORD": "p"}, "a user"),
        ("registry_user = 'u'\npassword_file = 'missing.txt'\n", {}, "missing.txt: cannot read"),
    ],
)
def test_half_configured_is_a_clear_error(
    tmp_path: Path, extra: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        credentials.resolve(settings(tmp_path, extra), env)


def test_error_classification() -> None:
    auth = "ERROR: failed to push x: unexpected status from HEAD request: 401 Unauthorized"
    assert credentials.is_auth_error(auth)
    assert not images.is_transient(auth)
    for text in (
        "ERROR: failed to push: 503 Service Unavailable",
        "error: read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer",
        "ERROR: failed to do request: Head ...: i/o timeout",
    ):
        assert images.is_transient(text), text
    # numbers in ordinary build output are not errors
    assert not images.is_transient("#6 DONE 1.500\nERROR: process exited: exit code: 2")


def test_cache_config_values(tmp_path: Path) -> None:
    assert settings(tmp_path).cache == "none"
    assert settings(tmp_path, "cache = 'registry'\n").cache == "registry"
    with pytest.raises(ConfigError, match="cache: expected one of none, registry, local"):
        settings(tmp_path, "cache = 'disk'\n")
