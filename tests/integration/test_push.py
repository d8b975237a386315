"""``inv image.push`` into the loopback registry, single- and multi-platform."""

from __future__ import annotations

import json
import shutil
import urllib.request
import uuid

from .conftest import Project, docker, tags_in

REG = "localhost:5000/acme"
INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = ", ".join(
    [
        INDEX,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def manifest(registry: str, repo: str, tag: str) -> dict:
    req = urllib.request.Request(
        f"http://{registry}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def platforms_of(index: dict) -> set[str]:
    return {
        f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in index.get("manifests", [])
        if m.get("platform", {}).get("os") != "unknown"
    }  # skip attestation entries


def run_arm64(ref: str, *cmd: str) -> str:
    """stdout of ``docker run`` of ``ref`` for linux/arm64, pulled from the registry."""
    args = ["run", "--rm", "--pull", "always", "--platform", "linux/arm64", ref, *cmd]
    return docker(*args).stdout.strip()


def test_push_two_platforms_makes_manifest_lists(project: Project, registry: str) -> None:
    res = project.inv("image.push", "--platform", "linux/amd64,linux/arm64")
    for name in ("base", "api", "worker"):
        for tag in ("2.3.0", "latest"):
            index = manifest(registry, f"acme/{name}", tag)
            assert platforms_of(index) == {"linux/amd64", "linux/arm64"}, (
                name,
                tag,
                index,
                res.stdout,
                (project.path / "dist/build-report.json").read_text(),
            )
    images = {i["name"]: i for i in project.report()["images"]}
    assert images["api"]["platforms"] == ["linux/amd64", "linux/arm64"]
    docker("rmi", f"{REG}/api:2.3.0", check=False)
    assert run_arm64(f"{REG}/base:2.3.0", "uname", "-m") == "aarch64"
    assert "hello from acme api" in run_arm64(f"{REG}/api:2.3.0")


def test_push_one_platform(project: Project, registry: str) -> None:
    project.inv("image.push", "--platform", "linux/arm64", "--name", "worker")
    index = manifest(registry, "acme/worker", "2.3.0")
    assert platforms_of(index) == {"linux/arm64"}
    assert run_arm64(f"{REG}/worker:2.3.0", "uname", "-m") == "aarch64"


def test_registry_build_cache_is_written_and_read(project: Project, registry: str) -> None:
    env = {"INVOKE_BUILDKIT_CACHE": "registry"}
    project.inv("image.push", "--name", "worker", "--no-batch", env=env)
    for name in ("base", "worker"):
        index = manifest(registry, f"acme/{name}", "buildcache")
        assert index.get("manifests") or index.get("layers"), name
    log = (project.path / "dist" / "logs" / "worker.log").read_text()
    assert "exporting cache to registry" in log


def test_local_build_cache_directory(project: Project) -> None:
    project.inv("image.build", "--name", "worker", env={"INVOKE_BUILDKIT_CACHE": "local"})
    for name in ("base", "worker"):
        assert (project.path / ".buildkit-cache" / name / "index.json").is_file(), name
    # the second build reads it back (forced, so the input-key skip does not hide it)
    project.inv(
        "image.build",
        "--name",
        "worker",
        "--force",
        "--no-batch",
        env={"INVOKE_BUILDKIT_CACHE": "local"},
    )
    log = (project.path / "dist" / "logs" / "worker.log").read_text()
    assert "importing cache manifest from local" in log


def test_unknown_platform_says_how_to_fix(project: Project) -> None:
    res = project.inv("image.build", "--platform", "linux/mips", check=False)
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("buildkit: --platform: the builder cannot build linux/mips")
    assert "update-binfmts --enable" in last


def test_an_image_restricted_to_amd64_is_skipped_for_arm64(project: Project) -> None:
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            '[tool.buildkit.images.worker]\ncontext = "images/worker"\n',
            '[tool.buildkit.images.worker]\ncontext = "images/worker"\n'
            'platforms = ["linux/amd64"]\n',
        )
    )
    res = project.inv("image.build", "--platform", "linux/amd64,linux/arm64")
    images = {i["name"]: i for i in project.report()["images"]}
    assert images["worker"]["platforms"] == ["linux/amd64"]
    assert images["worker"]["note"] == "left out linux/arm64 not in its platforms (linux/amd64)"
    assert "left out linux/arm64" in res.stdout
    assert images["api"]["platforms"] == ["linux/amd64", "linux/arm64"]
    res = project.inv("image.build", "--platform", "linux/arm64", "--name", "worker")
    worker = {i["name"]: i for i in project.report()["images"]}["worker"]
    assert worker["status"] == "skipped"
    assert worker["error"] == "skipped: linux/arm64 not in its platforms (linux/amd64)"


def test_a_version_tag_naming_another_manifest_is_pointed_back(
    project: Project, registry: str
) -> None:
    """The engine has been seen leaving a pushed tag on a single-platform manifest; the build
    checks the tag against the digest it pushed and re-points it."""
    from buildkit_tasks.engines import docker as engine
    from buildkit_tasks.runner import Runner

    project.inv("image.push", "--platform", "linux/amd64,linux/arm64", "--name", "base")
    ref = f"{registry}/acme/base:2.3.0"
    index = manifest(registry, "acme/base", "2.3.0")
    pushed = project.report()["images"][0]["digest"]
    one = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
    docker("buildx", "imagetools", "create", "--tag", ref, f"{registry}/acme/base@{one}")
    assert platforms_of(manifest(registry, "acme/base", "2.3.0")) == {"linux/arm64"}  # wrong
    got, platforms, _ = engine.ensure_tag(Runner(), ref, pushed)
    assert got == pushed and set(platforms) == {"linux/amd64", "linux/arm64"}
    assert platforms_of(manifest(registry, "acme/base", "2.3.0")) == {"linux/amd64", "linux/arm64"}


def _own_namespace(project: Project, registry: str) -> tuple[str, dict[str, str]]:
    """A repository prefix no other test pushes to (worker's FROM names it), so the registry's
    tags say exactly what this test's runs made."""
    ns = f"atomic-{uuid.uuid4().hex[:10]}"
    worker = project.path / "images" / "worker" / "Dockerfile"
    worker.write_text(
        worker.read_text().replace("localhost:5000/acme/base:", f"{registry}/{ns}/base:")
    )
    return ns, {"INVOKE_BUILDKIT_REGISTRY": f"{registry}/{ns}"}


def test_an_atomic_push_with_a_failing_image_leaves_no_tag_of_the_run(
    project: Project, registry: str
) -> None:
    ns, env = _own_namespace(project, registry)
    worker = project.path / "images" / "worker" / "Dockerfile"
    good = worker.read_text()
    worker.write_text(good + "RUN echo broken on purpose && exit 3\n")
    project.commit("worker breaks")

    res = project.inv("image.push", "--platform", "linux/amd64,linux/arm64", env=env, check=False)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "no tag of this run was made; pushed by digest only:" in res.stderr
    for name in ("base", "api", "worker"):
        assert tags_in(registry, f"{ns}/{name}") in (None, []), name  # not one tag
    images = {i["name"]: i for i in project.report()["images"]}
    assert images["worker"]["status"] == "failed"
    for name in ("base", "api"):  # built and pushed, by digest only
        image = images[name]
        assert image["status"] == "succeeded" and image["tagged"] is False
        assert image["pushed"] == f"{registry}/{ns}/{name}@{image['digest']}"
        index = manifest(registry, f"{ns}/{name}", image["digest"])  # the registry has it
        assert platforms_of(index) == {"linux/amd64", "linux/arm64"}
        assert set(image["platform_digests"]) == {"linux/amd64", "linux/arm64"}

    # fixed: the next run makes every tag, on the digests it reports
    worker.write_text(good)
    project.commit("worker fixed")
    project.inv("image.push", "--platform", "linux/amd64,linux/arm64", env=env)
    images = {i["name"]: i for i in project.report()["images"]}
    version = project.report()["version"]["docker_tag"]
    for name in ("base", "api", "worker"):
        assert sorted(tags_in(registry, f"{ns}/{name}") or []) == sorted([version, "latest"])
        assert images[name]["tagged"] is True
        for tag in (version, "latest"):
            got = manifest(registry, f"{ns}/{name}", tag)
            assert platforms_of(got) == {"linux/amd64", "linux/arm64"}
        digest = images[name]["digest"]
        assert docker_digest(registry, f"{ns}/{name}", version) == digest
    # the worker that was pushed runs on this run's base
    assert "aarch64" in run_arm64(f"{registry}/{ns}/worker:{version}", "uname", "-m")


def test_no_atomic_pushes_each_image_as_it_finishes(project: Project, registry: str) -> None:
    """--no-atomic keeps the old behaviour (as bake --push): a failed image leaves the images
    finished before it tagged."""
    ns, env = _own_namespace(project, registry)
    worker = project.path / "images" / "worker" / "Dockerfile"
    worker.write_text(worker.read_text() + "RUN exit 3\n")
    project.commit("worker breaks")
    res = project.inv("image.push", "--no-atomic", "--no-batch", env=env, check=False)
    assert res.returncode == 1
    version = project.report()["version"]["docker_tag"]
    assert sorted(tags_in(registry, f"{ns}/base") or []) == sorted([version, "latest"])
    assert tags_in(registry, f"{ns}/worker") in (None, [])
    assert "pushed" not in {i["name"]: i for i in project.report()["images"]}["base"]


def docker_digest(registry: str, repo: str, tag: str) -> str:
    """The Docker-Content-Digest the registry answers for ``repo:tag``."""
    req = urllib.request.Request(
        f"http://{registry}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}, method="HEAD"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers["Docker-Content-Digest"]


def test_build_pulls_what_the_registry_holds_with_its_input_key(
    project: Project, registry: str
) -> None:
    platforms = "linux/amd64,linux/arm64"
    project.inv("image.push", "--name", "worker", "--platform", platforms)
    pushed = {i["name"]: i for i in project.report()["images"]}
    # a fresh engine: none of this run's images in the local store
    for image in pushed.values():
        for ref in image["references"]:
            docker("rmi", ref)
    shutil.rmtree(project.path / "dist" / "logs")
    res = project.inv("image.build", "--name", "worker", "--platform", platforms)
    built = {i["name"]: i for i in project.report()["images"]}
    for name in ("base", "worker"):
        assert built[name]["status"] == "cached", (name, res.stdout, res.stderr)
        assert built[name]["note"] == f"pulled {pushed[name]['references'][0]}"
        for ref in pushed[name]["references"]:  # both tags, with the key of this build
            labels = json.loads(
                docker("image", "inspect", "--format", "{{json .Config.Labels}}", ref).stdout
            )
            assert labels["dev.buildkit-tasks.input-key"] == built[name]["key"]
    assert not (project.path / "dist" / "logs" / "bake.log").exists()  # nothing was built
    # the arm64 half came too: run it without the registry (--pull never)
    arm = docker(
        "run", "--rm", "--pull", "never", "--platform", "linux/arm64",
        pushed["worker"]["references"][0], "uname", "-m",
    )  # fmt: skip
    assert arm.stdout.strip() == "aarch64"

    # pull = false: built here instead
    docker("rmi", *pushed["worker"]["references"])
    project.inv(
        "image.build", "--name", "worker", "--platform", platforms,
        env={"INVOKE_BUILDKIT_PULL": "false"},
    )  # fmt: skip
    again = {i["name"]: i for i in project.report()["images"]}
    assert again["worker"]["status"] == "succeeded" and "note" not in again["worker"]
