from pathlib import Path

from buildkit_tasks.engines import docker, helm


def test_buildx_argv_has_every_option_as_its_own_argument() -> None:
    req = docker.BuildRequest(
        context=Path("/p/api"),
        dockerfile=Path("/p/api/Dockerfile"),
        tags=["r/api:1", "r/api:latest"],
        labels={"org.opencontainers.image.title": "api; rm -rf /"},
        build_args={"B": "2", "A": "$(x)"},
        target="runtime",
        platforms=["linux/amd64", "linux/arm64"],
        contexts={"base": "r/base:1"},
        push=True,
        iidfile=Path("/tmp/iid"),
    )
    assert docker.build_argv(req) == [
        "docker",
        "buildx",
        "build",
        "--progress=plain",
        "--file",
        "/p/api/Dockerfile",
        "--tag",
        "r/api:1",
        "--tag",
        "r/api:latest",
        "--label",
        "org.opencontainers.image.title=api; rm -rf /",
        "--build-arg",
        "A=$(x)",
        "--build-arg",
        "B=2",
        "--target",
        "runtime",
        "--platform",
        "linux/amd64,linux/arm64",
        "--build-context",
        "base=docker-image://r/base:1",
        "--push",
        "--iidfile",
        "/tmp/iid",
        "/p/api",
    ]


def test_buildx_argv_loads_by_default() -> None:
    argv = docker.build_argv(docker.BuildRequest(Path("c"), Path("c/D"), ["x:1"]))
    assert "--load" in argv and "--push" not in argv and "--platform" not in argv


def test_save_and_helm_argv() -> None:
    assert docker.save_argv(["a:1", "b:1"], Path("/o/i.tar")) == [
        "docker",
        "save",
        "--output",
        "/o/i.tar",
        "a:1",
        "b:1",
    ]
    assert helm.package_argv(Path("/c"), "1.0.0", "1.0.0", Path("/d")) == [
        "helm",
        "package",
        "/c",
        "--version",
        "1.0.0",
        "--app-version",
        "1.0.0",
        "--destination",
        "/d",
    ]
    assert helm.lint_argv(Path("/c"), strict=True) == ["helm", "lint", "--strict", "/c"]
