"""``inv build.all`` on the bundled example project against the real engine and helm."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import jsonschema

from buildkit_tasks import report as buildkit_report

from .conftest import Project, cosign_key_pairs, docker

REG = "localhost:5000/acme"
IMAGES = ("base", "api", "worker")


def test_build_all_end_to_end(project: Project, tmp_path: Path) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    keys = cosign_key_pairs(tmp_path, password, "ours", "other")
    signing = {
        "INVOKE_BUILDKIT_COSIGN_KEY": str(keys["ours"] / "cosign.key"),
        "COSIGN_PASSWORD": password,
    }
    res = project.inv("build.all", env=signing)
    assert "2 passed" in res.stdout  # the example's own tests ran
    assert "All checks passed!" in res.stdout  # ruff ran
    dist = project.path / "dist"

    report = project.report()
    assert report["version"]["version"] == "2.3.0"
    assert report["status"] == "succeeded"
    commit = report["version"]["commit"]
    by_name = {i["name"]: i for i in report["images"]}
    assert set(by_name) == set(IMAGES) and report["images"][0]["name"] == "base"
    for name in IMAGES:
        img = by_name[name]
        assert img["status"] == "succeeded"
        assert img["references"] == [f"{REG}/{name}:2.3.0", f"{REG}/{name}:latest"]
        assert img["platforms"] == ["linux/amd64"]
        inspect = json.loads(docker("image", "inspect", f"{REG}/{name}:2.3.0").stdout)[0]
        assert inspect["Id"] == img["image_id"]
        labels = inspect["Config"]["Labels"]
        assert labels["org.opencontainers.image.version"] == "2.3.0"
        assert labels["org.opencontainers.image.revision"] == commit
        assert labels["org.opencontainers.image.title"] == name
        assert labels["org.opencontainers.image.source"] == "https://example.invalid/acme"
        assert labels["org.opencontainers.image.created"].endswith("Z")

    # each image runs
    assert docker("run", "--rm", f"{REG}/base:2.3.0").stdout.strip() == "base: x86_64"
    assert "hello from acme api" in docker("run", "--rm", f"{REG}/api:2.3.0").stdout
    assert docker("run", "--rm", f"{REG}/worker:2.3.0").stdout.strip() == "worker: processed 3 jobs"

    # the chart carries the version and renders the built references
    assert report["charts"] == [
        {
            "name": "acme",
            "version": "2.3.0",
            "app_version": "2.3.0",
            "path": "charts/acme-2.3.0.tgz",
        }
    ]
    chart = dist / "charts" / "acme-2.3.0.tgz"
    rendered = subprocess.run(
        ["helm", "template", "rel", str(chart)], capture_output=True, text=True, check=True
    ).stdout
    assert f'image: "{REG}/api:2.3.0"' in rendered
    assert f'image: "{REG}/worker:2.3.0"' in rendered
    assert (project.path / "charts/acme/Chart.yaml").read_text().count("version: 0.0.0") == 1

    # version.json
    stamped = json.loads((dist / "version.json").read_text())
    assert stamped["version"] == "2.3.0" and stamped["commit"] == commit
    assert stamped["dirty"] is False and stamped["branch"] == "main"

    # checksums cover every artifact, and verify
    sums = (dist / "SHA256SUMS").read_text()
    for path in ("images.tar", "charts/acme-2.3.0.tgz", "version.json"):
        assert f"  {path}\n" in sums
    assert {a["path"] for a in report["artifacts"]} == {
        "images.tar",
        "charts/acme-2.3.0.tgz",
        "version.json",
    }
    subprocess.run(
        ["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=dist, check=True, capture_output=True
    )
    # with a key configured, build.all signed SHA256SUMS; archive.verify checks that signature
    assert report["checksums_signature"] == "SHA256SUMS.sig"
    assert "sign: SHA256SUMS -> dist/SHA256SUMS.sig" in res.stdout
    for who, ok in (("ours", True), ("other", False)):
        public = {"INVOKE_BUILDKIT_COSIGN_PUBLIC_KEY": str(keys[who] / "cosign.pub")}
        checked = project.inv("archive.verify", env=public, check=False)
        assert (checked.returncode == 0) is ok, checked.stderr
        if ok:
            assert "signature: dist/SHA256SUMS.sig verified with" in checked.stdout
        else:
            assert "dist/SHA256SUMS.sig: not a signature of SHA256SUMS by the key" in checked.stderr
    texts = [res.stdout, res.stderr]
    texts += [p.read_text(errors="replace") for p in dist.rglob("*") if p.is_file()]
    assert all(password not in t for t in texts)

    # the source tree is left clean by the build
    assert (
        subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=project.path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        == ""
    )

    # the archive brings every image back after they are removed
    refs = [f"{REG}/{n}:2.3.0" for n in IMAGES]
    docker("rmi", *refs, *[f"{REG}/{n}:latest" for n in IMAGES])
    assert docker("image", "inspect", refs[1], check=False).returncode != 0
    loaded = docker("load", "-i", str(dist / "images.tar")).stdout
    for ref in refs:
        assert ref in loaded
        assert docker("image", "inspect", ref, check=False).returncode == 0
    assert "hello from acme api" in docker("run", "--rm", refs[1]).stdout

    # the report follows its published schema; its Markdown twin summarises it
    jsonschema.validate(report, buildkit_report.schema())
    md = (dist / "build-report.md").read_text()
    assert md.startswith("# Build 2.3.0\n") and "status **succeeded**" in md
    assert "| api | succeeded |" in md and "## Charts" in md and "## Artifacts" in md
    assert report["archive"]["compression"] == "none"  # containerd store: layers already compressed
    # not a terminal: plain, timestamped progress lines
    assert re.search(r"^\d\d:\d\d:\d\d image base: succeeded in ", res.stdout, re.M)


def test_dependents_build_from_this_runs_base_not_the_registry(
    project: Project, registry: str
) -> None:
    # The registry holds a stale base at the very reference api's Dockerfile names.
    stale = project.path / "stale"
    stale.mkdir()
    (stale / "Dockerfile").write_text("FROM scratch\nCOPY marker /marker\n")
    (stale / "marker").write_text("stale\n")
    docker("buildx", "build", "--push", "--tag", f"{REG}/base:latest", str(stale))

    marker = uuid.uuid4().hex
    dockerfile = project.path / "images" / "base" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + f"RUN echo {marker} > /marker\n")
    project.commit("base gets a marker")
    project.inv("image.build")
    for name in ("api", "worker"):
        ref = f"{REG}/{name}:{project.report()['version']['docker_tag']}"
        out = docker("run", "--rm", ref, "cat", "/marker").stdout.strip()
        assert out == marker, name


def test_name_builds_one_image_and_what_it_needs(project: Project) -> None:
    res = project.inv("image.build", "--name", "worker")
    assert "image api" not in res.stdout
    assert [i["name"] for i in project.report()["images"]] == ["base", "worker"]


def test_failed_base_skips_dependents_and_exits_non_zero(project: Project) -> None:
    dockerfile = project.path / "images" / "base" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN exit 7\n")
    res = project.inv("image.build", check=False)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .startswith("buildkit: 3 of 3 images did not build: base (failed), ")
    )
    images = {i["name"]: i for i in project.report()["images"]}
    assert images["base"]["status"] == "failed"
    assert "exit code: 7" in images["base"]["log_tail"]
    assert (project.path / "dist" / "logs" / "base.log").is_file()
    for name in ("api", "worker"):
        assert images[name]["status"] == "skipped"
        assert images[name]["error"] == "base failed"
