import json
import subprocess
from pathlib import Path

import pytest

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
    (tmp_path / "SHA256SUMS.sig").write_text("signature of an older SHA256SUMS")
    files = report.artifacts(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["charts/a-1.tgz", "images.tar"]
    entries = report.write_checksums(tmp_path, files)
    assert [e["path"] for e in entries] == ["charts/a-1.tgz", "images.tar"]
    assert not (tmp_path / "SHA256SUMS.sig").exists()  # it signed other checksums
    subprocess.run(
        ["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=tmp_path, check=True, capture_output=True
    )


def full_report() -> dict:
    return {
        "schema": report.SCHEMA,
        "status": "succeeded",
        "version": info("2.3.0").as_dict(),
        "images": [
            {
                "name": "api",
                "status": "succeeded",
                "seconds": 1.5,
                "references": ["r/api:2.3.0", "r/api:latest"],
                "platforms": ["linux/amd64"],
                "digest": "sha256:" + "a" * 64,
            },
            {"name": "w|x", "status": "failed", "seconds": 0, "error": "boom"},
        ],
        "size_budgets": [
            {
                "name": "api",
                "reference": "r/api:2.3.0",
                "size_mb": 12.5,
                "max_size_mb": 10,
                "over": True,
            }
        ],
        "charts": [
            {
                "name": "acme",
                "version": "2.3.0",
                "app_version": "2.3.0",
                "path": "charts/acme-2.3.0.tgz",
            }
        ],
        "archive": {
            "path": "images.tar",
            "compression": "none",
            "size": 2_000_000,
            "saved_size": 2_000_000,
            "sha256": "b" * 64,
            "images": ["r/api:2.3.0"],
        },
        "artifacts": [{"path": "images.tar", "sha256": "b" * 64}],
        "hosts": [
            {
                "host": "arm",
                "status": "succeeded",
                "seconds": 3.0,
                "exit_code": 0,
                "artifacts": "dist/hosts/arm",
                "files": 4,
                "error": None,
                "tried": ["arm"],
            }
        ],
    }


def test_schema_accepts_a_full_report_and_rejects_bad_ones() -> None:
    import jsonschema

    schema = report.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(full_report(), schema)
    bad = full_report()
    bad["images"][0]["status"] = "done"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = full_report()
    del bad["version"]["commit"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_markdown_summary_has_a_table_per_section() -> None:
    md = report.markdown(full_report())
    assert md.startswith("# Build 2.3.0\n")
    assert "status **succeeded**" in md
    assert "| api | succeeded | 1.5 | `r/api:2.3.0` |" in md
    assert "| w\\|x | failed | 0.0 | `boom` |" in md  # a pipe cannot break the table
    assert "| api | 12.5 | 10 | **over** |" in md
    assert "| image | status | seconds | reference |\n| --- | --- | --- | --- |" in md
    assert "| acme | 2.3.0 | 2.3.0 | `charts/acme-2.3.0.tgz` |" in md
    assert "`images.tar`: 1 images, 2.0 MB, compression none" in md
    assert "| arm | succeeded | 3.0 | dist/hosts/arm |" in md


def test_update_writes_the_markdown_twin(tmp_path: Path) -> None:
    report.update(tmp_path / "build-report.json", info("1.0"), images=[])
    assert (tmp_path / "build-report.md").read_text().startswith("# Build 1.0\n")


def test_known_digests_are_not_recomputed(tmp_path: Path) -> None:
    (tmp_path / "images.tar").write_bytes(b"x")
    entries = report.write_checksums(
        tmp_path, [tmp_path / "images.tar"], {tmp_path / "images.tar": "f" * 64}
    )
    assert entries == [{"path": "images.tar", "sha256": "f" * 64}]
