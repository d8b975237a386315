import dataclasses
import io
import json
import tarfile
from pathlib import Path

import pytest

from buildkit_tasks import buildplan, config, remote, versioning
from buildkit_tasks.errors import BuildkitError, ConfigError, HostError
from buildkit_tasks.fsutil import sha256_file
from tests.conftest import commit_all

HOSTS = """
[[tool.buildkit.hosts]]
name = "x1"
address = "h1"
platforms = ["linux/amd64"]
[[tool.buildkit.hosts]]
name = "arm"
address = "h2"
platforms = ["linux/arm64"]
[[tool.buildkit.hosts]]
name = "x2"
address = "h3"
platforms = ["linux/amd64", "linux/arm64"]
"""


def settings(tmp_path: Path, extra: str = "") -> config.Settings:
    (tmp_path / "pyproject.toml").write_text("[tool.buildkit]\n" + extra + HOSTS)
    return config.load(tmp_path)


def test_targets_by_name_and_by_platform(tmp_path: Path) -> None:
    s = settings(tmp_path)
    jobs = remote.targets(s, ["arm"], ["linux/amd64"])
    assert [(j.label, [h.name for h in j.candidates]) for j in jobs] == [
        ("arm", ["arm"]),
        ("linux/amd64", ["x1", "x2"]),
    ]
    with pytest.raises(ConfigError, match="no host .* builds linux/s390x"):
        remote.targets(s, [], ["linux/s390x"])
    with pytest.raises(ConfigError, match="name a host"):
        remote.targets(s, [], [])


def test_workspace_files_follow_git_and_remote_include(tmp_path: Path) -> None:
    s = settings(tmp_path, 'remote_include = ["gen/*.bin"]\n')
    (tmp_path / ".gitignore").write_text("gen/\n*.log\ndist/\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x")
    (tmp_path / "gone.txt").write_text("x")
    commit_all(tmp_path, "init")
    (tmp_path / "gone.txt").unlink()  # tracked but deleted: not copied
    (tmp_path / "new.txt").write_text("untracked, not ignored")
    (tmp_path / "debug.log").write_text("ignored")
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "tool.bin").write_text("ignored but included")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "old.tar").write_text("output")
    assert remote.workspace_files(s) == [
        ".gitignore",
        "gen/tool.bin",
        "new.txt",
        "pyproject.toml",
        "src/a.py",
    ]


def test_verify_tree_catches_missing_corrupt_and_bad_sums(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "SHA256SUMS").write_text(f"{sha256_file(tmp_path / 'a.txt')}  a.txt\n")
    expected = {p.name: sha256_file(p) for p in tmp_path.iterdir()}
    remote.verify_tree(tmp_path, expected, "h")
    with pytest.raises(HostError, match="missing"):
        remote.verify_tree(tmp_path, {**expected, "b.txt": "0" * 64}, "h")
    with pytest.raises(HostError, match="corrupted a.txt"):
        remote.verify_tree(tmp_path, {**expected, "a.txt": "0" * 64}, "h")
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  a.txt\n")
    expected = {p.name: sha256_file(p) for p in tmp_path.iterdir()}
    with pytest.raises(HostError, match="SHA256SUMS does not hold for a.txt"):
        remote.verify_tree(tmp_path, expected, "h")


def test_extract_refuses_paths_outside_and_links(tmp_path: Path) -> None:
    for name, kind in (("../evil", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.type = kind
            tar.addfile(info, io.BytesIO(b""))
        path = tmp_path / f"{kind!r}.tar"
        path.write_bytes(buf.getvalue())
        with pytest.raises(BuildkitError, match="refusing archive member"):
            remote._extract(path, tmp_path / f"out-{len(list(tmp_path.iterdir()))}")


def test_versions_file_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = versioning.VersionInfo(
        "2.3.1.dev2+abc",
        "2.3.1.dev2-abc",
        "2.3.1-pre.2+abc",
        "abc" * 13,
        "main",
        False,
        2,
        "2026-01-01T00:00:00Z",
    )
    own = dataclasses.replace(info, version="0.4.0", docker_tag="0.4.0", chart_version="0.4.0")
    shipped = buildplan.Versions(info, {"api": own}, {"charts/app": own})
    f = tmp_path / "v.json"
    f.write_text(json.dumps(shipped.as_dict()))
    monkeypatch.setenv("BUILDKIT_VERSIONS_FILE", str(f))
    (tmp_path / "pyproject.toml").write_text("")
    s = config.Settings(root=tmp_path)
    assert buildplan.project_version(s) == info
    assert buildplan.versions(s, {}) == shipped
    f.write_text("{}")
    with pytest.raises(ConfigError, match="expected a versions JSON file"):
        buildplan.versions(s, {})


def test_local_wheel_comes_from_the_source_checkout(tmp_path: Path) -> None:
    # This checkout is an editable install; the wheel is keyed by the source content.
    assert remote._source_dir() is not None
    key = remote._tree_key(remote._source_dir())  # type: ignore[arg-type]
    assert len(key) == 12 and key == remote._tree_key(remote._source_dir())  # type: ignore[arg-type]
