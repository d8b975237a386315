import json
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


def test_the_throw_away_config_is_a_view_of_the_users_own(tmp_path: Path) -> None:
    own, view = tmp_path / "own", tmp_path / "view"
    (own / "contexts" / "meta").mkdir(parents=True)
    (own / "buildx" / "instances").mkdir(parents=True)
    (own / "cli-plugins").mkdir()
    settings = {
        "currentContext": "remote-engine",
        "proxies": {"default": {"httpProxy": "http://127.0.0.1:3128"}},
        "credsStore": "desktop",
        "credHelpers": {"registry.example:5443": "pass", "gcr.io": "gcloud"},
        "auths": {
            "https://registry.example:5443/v1/": {"auth": "b2xkOm9sZA=="},
            "other.example": {"auth": "dXNlcjpwdw=="},
        },
    }
    (own / "config.json").write_text(json.dumps(settings))
    before = {p: p.read_bytes() for p in own.rglob("*") if p.is_file()}
    view.mkdir()
    credentials.config_view(own, view, "registry.example:5443")
    made = json.loads((view / "config.json").read_text())
    # the user's settings, but nothing that would answer for (or store) the run's registry
    assert made == {
        "currentContext": "remote-engine",
        "proxies": {"default": {"httpProxy": "http://127.0.0.1:3128"}},
        "credHelpers": {"gcr.io": "gcloud"},
        "auths": {"other.example": {"auth": "dXNlcjpwdw=="}},
    }
    for name in ("contexts", "buildx", "cli-plugins"):
        assert (view / name).resolve() == (own / name).resolve(), name
    assert (view / "config.json").stat().st_mode & 0o077 == 0
    assert {p: p.read_bytes() for p in own.rglob("*") if p.is_file()} == before
    # Docker Hub's key is a URL; an own config that is missing or not JSON counts as empty
    hub = tmp_path / "hub"
    hub.mkdir()
    (own / "config.json").write_text('{"auths": {"https://index.docker.io/v1/": {}}}')
    credentials.config_view(own, hub, "docker.io")
    assert json.loads((hub / "config.json").read_text()) == {"auths": {}}
    (own / "config.json").write_text("[not json")
    for source, out in ((tmp_path / "missing", tmp_path / "v1"), (own, tmp_path / "v2")):
        out.mkdir()
        credentials.config_view(source, out, "x.io")
        assert json.loads((out / "config.json").read_text()) == {}
