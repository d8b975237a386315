import json
import subprocess
import sys
from pathlib import Path

import pytest

from buildkit_tasks import config, versioning
from tests.conftest import commit_all, git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '9.9.9'\n")
    commit_all(tmp_path, "first")
    return tmp_path


def test_on_a_tag_the_version_is_the_tag(repo: Path) -> None:
    git(repo, "tag", "-a", "v2.3.0", "-m", "v2.3.0")
    info = versioning.detect(repo)
    assert (info.version, info.docker_tag, info.chart_version) == ("2.3.0", "2.3.0", "2.3.0")
    assert info.commit == git(repo, "rev-parse", "HEAD")
    assert info.branch == "main"
    assert info.dirty is False and info.distance == 0


def test_past_a_tag_names_distance_and_commit(repo: Path) -> None:
    git(repo, "tag", "-a", "v2.3.0", "-m", "v2.3.0")
    (repo / "f").write_text("x")
    head = commit_all(repo, "second")
    info = versioning.detect(repo)
    assert info.version == f"2.3.1.dev1+{head[:7]}"
    assert info.docker_tag == f"2.3.1.dev1-{head[:7]}"
    assert info.chart_version.startswith("2.3.1-") and head[:7] in info.chart_version
    assert info.distance == 1


def test_dirty_tree_is_marked(repo: Path) -> None:
    git(repo, "tag", "-a", "v1.0.0", "-m", "v1.0.0")
    (repo / "pyproject.toml").write_text("changed")
    info = versioning.detect(repo)
    assert info.dirty is True
    assert "dirty" in info.version and "dirty" in info.docker_tag


def test_without_git_falls_back_to_project_version(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nversion = '4.5.6'\n")
    info = versioning.detect(tmp_path)
    assert info.version == "4.5.6" and info.commit is None


def test_without_git_dunamai_is_not_imported(tmp_path: Path) -> None:
    # importing dunamai reads every installed distribution's metadata (~50 ms a run)
    (tmp_path / "pyproject.toml").write_text("[project]\nversion = '4.5.6'\n")
    code = (
        "import sys; from pathlib import Path; from buildkit_tasks import versioning; "
        f"v = versioning.detect(Path({str(tmp_path)!r})); "
        "print(v.version, 'dunamai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["4.5.6", "False"]


@pytest.mark.parametrize(
    ("version", "tag"),
    [("1.2.3+abc.dirty", "1.2.3-abc.dirty"), ("+x", "x"), ("a" * 200, "a" * 128)],
)
def test_docker_tag_is_docker_safe(version: str, tag: str) -> None:
    assert versioning.docker_tag(version) == tag


def test_build_date_honours_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert versioning.build_date() == "1970-01-01T00:00:00Z"


def test_stamp_writes_builtin_and_custom_templates(repo: Path) -> None:
    git(repo, "tag", "-a", "v2.3.0", "-m", "v2.3.0")
    (repo / "v.txt.j2").write_text("{{ version }} {{ commit }}\n")
    with (repo / "pyproject.toml").open("a") as fh:
        fh.write(
            "[tool.buildkit.version]\nfiles = [{path = 'version.json'},"
            " {template = 'v.txt.j2', path = 'sub/v.txt'}]\n"
        )
    commit_all(repo, "config")
    git(repo, "tag", "-f", "-a", "v2.3.0", "-m", "v2.3.0")
    s = config.load(repo)
    info = versioning.detect(repo)
    written = versioning.stamp(s, info)
    assert written == [s.output_dir / "version.json", s.output_dir / "sub" / "v.txt"]
    data = json.loads(written[0].read_text())
    assert data["version"] == "2.3.0" and data["commit"] == info.commit
    assert data["branch"] == "main" and data["dirty"] is False
    assert data["build_date"].endswith("Z") and "T" in data["build_date"]
    assert written[1].read_text() == f"2.3.0 {info.commit}\n"


def test_tag_pattern_picks_this_components_tags(repo: Path) -> None:
    git(repo, "tag", "-a", "api-v1.4.0", "-m", "api")
    git(repo, "tag", "-a", "web-v7.0.0", "-m", "web")
    (repo / "f").write_text("x")
    head = commit_all(repo, "second")
    assert versioning.detect(repo, "api-v*").version == f"1.4.1.dev1+{head[:7]}"
    assert versioning.detect(repo, "web-v*").version == f"7.0.1.dev1+{head[:7]}"
    assert versioning.detect(repo).version.startswith("0.0.1.dev2")  # no v* tag at all
    assert versioning.detect(repo, "api-v*", "post").version == f"1.4.0.post1.dev0+{head[:7]}"


def test_tag_regex() -> None:
    import re

    assert re.match(versioning.tag_regex("api-v*"), "api-v1.2.3rc1")
    assert not re.match(versioning.tag_regex("api-v*"), "v1.2.3")
    assert not re.match(versioning.tag_regex("v*"), "api-v1.2.3")


def test_without_git_a_version_file_wins(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '9.9.9'\n")
    assert versioning.detect(tmp_path).version == "9.9.9"
    (tmp_path / "VERSION").write_text("4.5.6\n")
    info = versioning.detect(tmp_path)
    assert (info.version, info.commit, info.distance) == ("4.5.6", None, 0)


def test_shallow_clone_warns_and_still_gives_a_version(
    repo: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repo, "tag", "-a", "v3.0.0", "-m", "v3.0.0")
    for i in range(3):
        (repo / "f").write_text(str(i))
        commit_all(repo, f"c{i}")
    clone = tmp_path_factory.mktemp("shallow") / "c"
    git(repo, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))
    info = versioning.detect(clone)
    assert info.version and info.commit == git(repo, "rev-parse", "HEAD")
    assert "shallow clone" in capsys.readouterr().err


def test_version_of_paths_is_the_last_commit_touching_them(repo: Path) -> None:
    (repo / "api").mkdir()
    (repo / "worker").mkdir()
    (repo / "api" / "a").write_text("1")
    (repo / "worker" / "w").write_text("1")
    commit_all(repo, "both")
    git(repo, "tag", "-a", "v1.0.0", "-m", "v1.0.0")
    (repo / "worker" / "w").write_text("2")
    worker_commit = commit_all(repo, "worker only")
    (repo / "api" / "a").write_text("2")
    commit_all(repo, "api only")
    (repo / "README").write_text("docs")
    commit_all(repo, "neither")
    worker = versioning.for_paths(repo, ("worker",))
    assert worker.version == f"1.0.1.dev1+{worker_commit[:7]}" and worker.commit == worker_commit
    api = versioning.for_paths(repo, ("api",))
    assert api.distance == 2
    assert versioning.detect(repo).distance == 3
    (repo / "worker" / "w").write_text("dirty")
    assert versioning.for_paths(repo, ("worker",)).dirty
    assert not versioning.for_paths(repo, ("api",)).dirty


def test_release_tag_text_is_the_docker_tag_and_prereleases_keep_semver(repo: Path) -> None:
    git(repo, "tag", "-a", "v4.0.0-beta.1", "-m", "b1")
    info = versioning.detect(repo)
    assert info.docker_tag == "4.0.0-beta.1"  # as Docker users and the chart expect
    assert info.chart_version == "4.0.0-beta.1"
    assert info.version == "4.0.0b1"  # PEP 440 stays PEP 440
    (repo / "f").write_text("x")
    commit_all(repo, "past the prerelease")
    assert versioning.detect(repo).docker_tag.startswith("4.0.0b2.dev1-")


def test_a_matching_tag_without_a_version_is_an_error_not_0_0_0(repo: Path) -> None:
    from buildkit_tasks.errors import ConfigError

    git(repo, "tag", "-a", "v-next", "-m", "not a version")
    with pytest.raises(ConfigError, match="tag 'v-next' matches .* tag_pattern 'v\\*' but holds"):
        versioning.detect(repo)
    with pytest.raises(ConfigError, match="'v-next'"):
        versioning.for_paths(repo, ("pyproject.toml",))


def test_a_tagged_commit_is_the_release_for_every_path(repo: Path) -> None:
    (repo / "api").mkdir()
    (repo / "api" / "a").write_text("1")
    commit_all(repo, "api")
    (repo / "docs").write_text("release notes")
    commit_all(repo, "release commit touches docs only")
    git(repo, "tag", "-a", "v2.0.0", "-m", "v2.0.0")
    api = versioning.for_paths(repo, ("api",))
    assert (api.version, api.docker_tag, api.distance) == ("2.0.0", "2.0.0", 0)
    assert api.commit == git(repo, "rev-parse", "HEAD")


def test_chartpress_version_rules_without_the_peer(repo: Path) -> None:
    short = git(repo, "rev-parse", "--short", "HEAD")
    assert versioning.chartpress_version(repo).version == f"0.0.1-0.dev.git.1.h{short}"
    git(repo, "tag", "-a", "v1.2.0", "-m", "v1.2.0")
    info = versioning.chartpress_version(repo)
    assert (info.docker_tag, info.chart_version) == ("v1.2.0", "1.2.0")  # chart drops the v
    assert versioning.chartpress_version(repo, long=True).version == f"v1.2.0-0.dev.git.1.h{short}"
    (repo / "f").write_text("x")
    head = commit_all(repo, "past")
    short = git(repo, "rev-parse", "--short", head)
    assert versioning.chartpress_version(repo, base_version="1.3.0-0.dev").version == (
        f"1.3.0-0.dev.git.2.h{short}"
    )
    assert versioning.check_base_version(repo, "patch") == "1.2.1-0.dev"
    assert versioning.check_base_version(repo, "major") == "2.0.0-0.dev"
    assert versioning.check_base_version(repo, "1.4.0") == "1.4.0-0.dev"
