import json
import subprocess
from pathlib import Path

from buildkit_tasks import report
from buildkit_tasks.versioning import VersionInfo


def info(version: str) -> VersionInfo:
    return VersionInfo(
        version, version, version, "c" * 40, "main", False, 0, "2026-01-01T00:00:00Z"
    )


def test_sections_merge_and_reset_on_new_version(tmp_path: Path) -> None:
    path = tmp_path / "build-report.json"
    report.update(path, info("1.0"), images=[{"name": "a"}])
    data = report.update(path, info("1.0"), charts=[{"name": "c"}])
    assert data["images"] == [{"name": "a"}] and data["charts"] == [{"name": "c"}]
    assert json.loads(path.read_text())["version"]["version"] == "1.0"
    data = report.update(path, info("2.0"), charts=[])
    assert "images" not in data


def test_checksums_pass_sha256sum_and_skip_non_artifacts(tmp_path: Path) -> None:
    (tmp_path / "charts").mkdir()
    (tmp_path / "charts" / "a-1.tgz").write_bytes(b"chart")
    (tmp_path / "images.tar").write_bytes(b"images" * 1000)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text("log")
    (tmp_path / ".images.tar.123.tmp").write_text("partial")
    (tmp_path / "build-report.json").write_text("{}")
    files = report.artifacts(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["charts/a-1.tgz", "images.tar"]
    entries = report.write_checksums(tmp_path, files)
    assert [e["path"] for e in entries] == ["charts/a-1.tgz", "images.tar"]
    subprocess.run(
        ["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=tmp_path, check=True, capture_output=True
    )
