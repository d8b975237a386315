import re
from pathlib import Path

import pytest

from buildkit_tasks import config
from buildkit_tasks.errors import ConfigError


def project(tmp_path: Path, table: str) -> Path:
    (tmp_path / "img").mkdir(parents=True)
    (tmp_path / "img" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "pyproject.toml").write_text(table)
    return tmp_path


BASIC = """
[tool.buildkit]
registry = "localhost:5000/acme"
platforms = ["linux/amd64", "linux/arm64"]
parallel = 3
[tool.buildkit.images.api]
context = "img"
build_args = { A = "1", B = 2 }
target = "runtime"
"""


def test_reads_table_and_resolves_paths(tmp_path: Path) -> None:
    s = config.load(project(tmp_path, BASIC))
    assert s.registry == "localhost:5000/acme"
    assert s.reference("api", "1.0") == "localhost:5000/acme/api:1.0"
    assert s.output_dir == tmp_path.resolve() / "dist"
    assert s.platforms == ("linux/amd64", "linux/arm64")
    assert s.parallel == 3
    api = s.images["api"]
    assert api.context == (tmp_path / "img").resolve()
    assert api.dockerfile == (tmp_path / "img" / "Dockerfile").resolve()
    assert api.build_args == {"A": "1", "B": "2"}
    assert api.target == "runtime"
    assert [vf.path for vf in s.version_files] == ["version.json"]


def test_invoke_config_overrides_pyproject(tmp_path: Path) -> None:
    s = config.load(
        project(tmp_path, BASIC),
        {
            "registry": "reg.example:5000/x",
            "output_dir": "out",
            "platforms": "linux/s390x",
            "parallel": None,
        },
    )
    assert s.registry == "reg.example:5000/x"
    assert s.output_dir == tmp_path.resolve() / "out"
    assert s.platforms == ("linux/s390x",)  # a string from an env var splits on commas
    assert s.parallel == 3  # None means "not set"


def test_without_registry_references_are_bare(tmp_path: Path) -> None:
    s = config.load(project(tmp_path, "[tool.buildkit.images.api]\ncontext = 'img'\n"))
    assert s.reference("api", "1") == "api:1"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            "[tool.buildkit.images.api]\ncontext = 3\n",
            "[tool.buildkit.images.api] context: expected",
        ),
        ("[tool.buildkit.images.api]\n", "context: expected the build context directory"),
        ("[tool.buildkit.images.api]\ncontext = 'nope'\n", "an existing directory"),
        (
            "[tool.buildkit.images.api]\ncontext = 'img'\ndockerfile = 'X'\n",
            "dockerfile: expected a file relative to the context",
        ),
        ("[tool.buildkit.images.Bad_Name]\ncontext = 'img'\n", "not a valid repository name"),
        ("[tool.buildkit]\nplatforms = ['amd64']\n", "platforms like 'linux/amd64'"),
        ("[tool.buildkit]\nparallel = 0\n", "parallel: expected a positive integer"),
        ("[tool.buildkit.helm]\ncharts = ['img']\n", "holding Chart.yaml"),
        (
            "[tool.buildkit.version]\nfiles = [{template = 'nope.j2', path = 'v.json'}]\n",
            "template files that exist",
        ),
        ("[tool.buildkit\n", "invalid TOML"),
    ],
)
def test_bad_input_names_file_and_key(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(project(tmp_path, table))
    text = str(err.value)
    assert message in text
    assert "pyproject.toml" in text
    assert "\n" not in text


def test_find_root_walks_up(tmp_path: Path) -> None:
    root = project(tmp_path, "")
    deep = root / "a" / "b"
    deep.mkdir(parents=True)
    assert config.find_root(deep) == root.resolve()


def test_merge_is_deep_and_skips_none() -> None:
    merged = config.merge(
        {"helm": {"charts": ["a"], "x": 1}, "k": 1}, {"helm": {"charts": ["b"]}, "k": None}
    )
    assert merged == {"helm": {"charts": ["b"], "x": 1}, "k": 1}


def test_quality_and_output_keys(tmp_path: Path) -> None:
    s = config.load(
        project(
            tmp_path,
            BASIC.replace('target = "runtime"', 'target = "runtime"\nmax_size_mb = 12.5')
            + '[tool.buildkit.lint]\ntools = ["black", "isort", "mypy"]\n'
            "[tool.buildkit.test]\ncoverage = 80\n"
            '[tool.buildkit.archive]\ncompression = "zstd"\n'
            '[tool.buildkit.scan]\nseverity = "HIGH,CRITICAL"\n',
        )
    )
    assert s.images["api"].max_size_mb == 12.5
    assert s.lint_tools == ("black", "isort", "mypy")
    assert s.coverage_floor == 80.0 and s.archive_compression == "zstd"
    assert s.scan_severity == "HIGH,CRITICAL" and s.progress == "auto"


@pytest.mark.parametrize(
    "extra, message",
    [
        ('[tool.buildkit.lint]\ntools = ["pylint"]\n', "lint] tools: expected a list from ruff"),
        ("[tool.buildkit.test]\ncoverage = 120\n", "test] coverage: expected a percentage"),
        ('[tool.buildkit.archive]\ncompression = "xz"\n', "compression: expected one of auto"),
        ('[tool.buildkit.scan]\nseverity = "BAD"\n', "severity: expected comma-separated"),
    ],
)
def test_bad_quality_keys(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message).replace("\\ ", " ")):
        config.load(project(tmp_path, BASIC + extra))


def test_bad_budget_and_progress(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_size_mb: expected a positive number"):
        config.load(project(tmp_path, BASIC + "max_size_mb = -1\n"))
    with pytest.raises(ConfigError, match="progress: expected one of auto, live"):
        config.load(project(tmp_path / "p2", '[tool.buildkit]\nprogress = "fancy"\n'))


def test_chart_version_paths_must_name_a_listed_chart(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "Chart.yaml").write_text("name: c\n")
    ok = '[tool.buildkit.helm]\ncharts = ["c"]\n[tool.buildkit.helm.version_paths]\nc = ["c"]\n'
    s = config.load(project(tmp_path, ok))
    assert s.chart_version_paths == {tmp_path.resolve() / "c": ("c",)}
    (tmp_path / "pyproject.toml").write_text(ok.replace("\nc = ", "\nother = "))
    with pytest.raises(ConfigError, match="version_paths\\] other: expected a chart directory"):
        config.load(tmp_path)


@pytest.mark.parametrize(
    ("registry", "what"),
    [
        ("quay.io/org/k8s-", "trailing '/' or '-'"),
        ("localhost:5000/acme/", "trailing '/' or '-'"),
        ("https://quay.io/org", "without a scheme"),
    ],
)
def test_registry_with_a_name_prefix_or_scheme_is_an_error(
    tmp_path: Path, registry: str, what: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(what)) as err:
        config.load(project(tmp_path, f'[tool.buildkit]\nregistry = "{registry}"\n'))
    assert "image_prefix" in str(err.value)


def test_image_prefix_starts_every_repository(tmp_path: Path) -> None:
    s = config.load(
        project(tmp_path, '[tool.buildkit]\nregistry = "quay.io/org"\nimage_prefix = "k8s-"\n')
    )
    assert s.repository("hub") == "quay.io/org/k8s-hub"
    assert config.load(tmp_path, {"registry": ""}).repository("hub") == "k8s-hub"
    with pytest.raises(ConfigError, match="image_prefix"):
        config.load(tmp_path, {"image_prefix": "K8S Bad/"})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[tool.buildkit.version]\nscheme = "calver"\n', "scheme: expected one of pep440"),
        ('[tool.buildkit.version]\nbase_version = "5.0.0"\n', 'unless scheme = "chartpress"'),
        (
            '[tool.buildkit.version]\nscheme = "chartpress"\nbase_version = "5.x"\n',
            "base_version: expected a SemVer version",
        ),
        ('[tool.buildkit.helm]\napp_version = "chart"\n', "app_version: expected image"),
        ('[tool.buildkit.helm]\nreset_version = "latest"\n', "reset_version: expected a SemVer"),
        ('[tool.buildkit.helm]\nreset_tag = "a:b"\n', "reset_tag: expected a valid image tag"),
        ('[tool.buildkit.helm.publish]\nurl = "https://x"\n', "git: expected the chart"),
        ('[tool.buildkit.helm.publish]\ngit = "/srv/charts.git"\n', "url: expected the URL"),
        (
            '[tool.buildkit.helm.publish]\ngit = "https://u:tok@github.com/o/r"\nurl = "https://x"\n',
            "without a password",
        ),
        (
            '[tool.buildkit.images.api]\ncontext = "img"\nextra_build_args = ["--output=x"]\n',
            "extra_build_args: expected buildx build options we do not set",
        ),
        (
            '[tool.buildkit.images.api]\ncontext = "img"\nextra_build_args = ["label=x"]\n',
            "each starting with '-'",
        ),
        ('[tool.buildkit.version]\ntag_pattern = "v[0-9]*"\n', "a literal prefix"),
    ],
)
def test_chartpress_parity_keys_are_validated(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        config.load(project(tmp_path, table))
    assert str(err.value).startswith(str(tmp_path / "pyproject.toml"))
    assert "tok@" not in str(err.value)  # a password in a URL is never echoed


def test_supply_chain_keys_are_checked(tmp_path: Path) -> None:
    from buildkit_tasks import config as cfg
    from buildkit_tasks.errors import ConfigError

    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "Dockerfile").write_text("FROM scratch\n")

    def load(extra: str, image: str = "") -> cfg.Settings:
        (tmp_path / "pyproject.toml").write_text(
            f'[tool.buildkit]\n{extra}\n[tool.buildkit.images.x]\ncontext = "img"\n{image}\n'
        )
        return cfg.load(tmp_path)

    s = load('reproducible = true\nprovenance = "off"\ncosign_key = "k.key"')
    assert s.reproducible and s.provenance == "off" and s.cosign_key == tmp_path / "k.key"
    assert load("").provenance == "min" and not load("").tlog_upload
    with pytest.raises(ConfigError, match="provenance: expected one of min, max, off"):
        load('provenance = "full"')
    assert load("", 'secrets = ["NPM_TOKEN"]').images["x"].secrets == ("NPM_TOKEN",)
    with pytest.raises(ConfigError, match="provenance: expected min or off while images take"):
        load('provenance = "max"', 'secrets = ["NPM_TOKEN"]')
    with pytest.raises(ConfigError, match="build_args: expected no secrets .NPM_TOKEN looks"):
        load("", 'build_args = { NPM_TOKEN = "x" }')
    with pytest.raises(ConfigError, match="secrets: expected environment variable names"):
        load("", 'secrets = ["not a name"]')


def test_a_dockerfile_that_is_a_symlink_is_followed_and_must_stay_inside(tmp_path: Path) -> None:
    root = project(tmp_path / "p", BASIC.replace('target = "runtime"\n', ""))
    (root / "shared.Dockerfile").write_text("FROM scratch\n")
    (root / "img" / "Dockerfile").unlink()
    (root / "img" / "Dockerfile").symlink_to(root / "shared.Dockerfile")
    assert config.load(root).images["api"].dockerfile == (root / "shared.Dockerfile").resolve()
    outside = tmp_path / "outside.Dockerfile"
    outside.write_text("FROM scratch\n")
    (root / "img" / "Dockerfile").unlink()
    (root / "img" / "Dockerfile").symlink_to(outside)
    with pytest.raises(ConfigError, match="dockerfile: expected a path inside the project"):
        config.load(root)
