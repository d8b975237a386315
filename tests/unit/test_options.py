import json
from pathlib import Path

import pytest
from invoke import Config, Context

from buildkit_tasks import config, options
from buildkit_tasks.errors import ConfigError
from buildkit_tasks.tasks import configuration
from tasks import README, readme_with_reference


def test_readme_reference_is_generated_from_the_option_table() -> None:
    text = README.read_text(encoding="utf-8")
    assert readme_with_reference(text) == text, "README is out of date: run inv docs"
    for o in options.OPTIONS:
        assert f"| `{o.key}` |" in text


def test_every_scalar_key_has_an_invoke_default_and_one_env_var() -> None:
    defaults = options.invoke_defaults()["buildkit"]
    assert defaults["archive"] == {"compression": None}
    assert defaults["discover"]["bare_names"] is None and "images" not in defaults
    names = [o.env_var for o in options.OPTIONS if o.env_var]
    assert len(names) == len(set(names))
    assert "INVOKE_BUILDKIT_ARCHIVE_COMPRESSION" in names
    # every key a table of Settings can take is declared (the keys config.describe shows)
    s = config.Settings(root=Path("/p"))
    assert set(config.describe(s)) <= set(options.BY_KEY)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"regsitry": "x"}, r"\[tool.buildkit\] regsitry: unknown key; did you mean 'registry'\?"),
        (
            {"hosts": [{"name": "a", "address": "u@h", "known_hosts": "f"}]},
            r"\[tool.buildkit.hosts\] known_hosts: unknown key; it belongs in \[tool.buildkit\]",
        ),
        (
            {"images": {"api": {"context": ".", "buildargs": {}}}},
            r"\[tool.buildkit.images\] buildargs: unknown key; did you mean 'build_args'\?",
        ),
        ({"archive": {"compresion": "zstd"}}, r"did you mean 'compression'\?"),
        ({"version": {"files": [{"path": "v", "tmpl": "x"}]}}, r"files\] tmpl: unknown key"),
        (
            {"tag_pattern": "v*"},
            r"tag_pattern: unknown key; it belongs in \[tool.buildkit.version\]",
        ),
        ({"root": "/x"}, r"root: unknown key"),
    ],
)
def test_unknown_or_misplaced_keys_name_the_nearest_valid_one(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        options.check_keys(table, "/p/pyproject.toml")


def test_free_tables_take_any_keys_and_invoke_config_takes_root() -> None:
    options.check_keys(
        {
            "images": {"any-name": {"context": ".", "build_args": {"WHATEVER": "1"}}},
            "helm": {"image_values": {"a.b.c": "api"}, "version_paths": {"charts/x": ["c"]}},
        },
        "/p/pyproject.toml",
    )
    options.check_keys({"root": "/x"}, "Invoke config 'buildkit'")


def test_unknown_env_var_is_an_error_naming_the_nearest() -> None:
    with pytest.raises(ConfigError, match="did you mean INVOKE_BUILDKIT_ARCHIVE_COMPRESSION"):
        options.check_env({"INVOKE_BUILDKIT_ARCHIVE_COMPRESION": "zstd"})
    options.check_env({"INVOKE_BUILDKIT_ARCHIVE_COMPRESSION": "zstd", "INVOKE_RUN_ECHO": "1"})


def test_load_rejects_unknown_keys_from_the_file_and_from_invoke(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.buildkit]\nregistry = "r"\n')
    assert config.load(tmp_path, {"archive": {"compression": None}, "root": None}).registry == "r"
    with pytest.raises(ConfigError, match="Invoke config 'buildkit': .* paralel"):
        config.load(tmp_path, {"paralel": 3})
    (tmp_path / "pyproject.toml").write_text('[tool.buildkit]\nregistyr = "r"\n')
    with pytest.raises(ConfigError, match="pyproject.toml: .* did you mean 'registry'"):
        config.load(tmp_path)


def test_config_show_gives_every_key_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.buildkit]\nregistry = "reg:5000/acme"\n[tool.buildkit.test]\ncoverage = 80\n'
    )
    monkeypatch.setenv("INVOKE_BUILDKIT_ARCHIVE_COMPRESSION", "gzip")
    monkeypatch.setenv("BUILDKIT_REGISTRY_USER", "ci")
    cfg = Config(
        overrides={"buildkit": {"root": str(tmp_path), "parallel": 3}},
        defaults={**Config.global_defaults(), **options.invoke_defaults()},
    )
    cfg.load_shell_env()
    configuration.show(Context(config=cfg), format="json")
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)["options"]}
    assert rows["registry"] == {
        "key": "registry",
        "value": "reg:5000/acme",
        "source": str(tmp_path / "pyproject.toml"),
    }
    assert rows["archive.compression"]["value"] == "gzip"
    assert rows["archive.compression"]["source"] == "env INVOKE_BUILDKIT_ARCHIVE_COMPRESSION"
    assert (rows["parallel"]["value"], rows["parallel"]["source"]) == ("3", "invoke config")
    assert (rows["registry_user"]["value"], rows["registry_user"]["source"]) == (
        "ci",
        "env BUILDKIT_REGISTRY_USER",
    )
    assert rows["test.coverage"]["value"] == "80" and rows["cache"]["source"] == "default"
    assert "password" not in json.dumps(rows).lower().replace("password_file", "")
