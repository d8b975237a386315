from pathlib import Path

import pytest

from buildkit_tasks import config
from buildkit_tasks.errors import ConfigError


def project(tmp_path: Path, table: str) -> Path:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "pyproject.toml").write_text(table)
    return tmp_path


BASIC = """
[tool.buildkit]
registry = "localhost:5000/acme/"
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
