"""Docker Engine and buildx: build, inspect, save.

Builds go through the ``docker buildx build`` CLI (the SDK has no buildx); inspection through
the ``docker`` SDK. Everything here takes argv-ready values; nothing builds a shell string.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BuildkitError, CommandError
from ..runner import Runner

DOCKER = "docker"


@dataclass(frozen=True)
class BuildRequest:
    """One ``docker buildx build``.

    ``contexts`` maps a reference as the Dockerfile writes it to the exact image to use for it
    (``docker-image://<ref>@<id>``), which is how an image builds from this run's result of
    another. ``platforms`` empty means the engine's own. ``push`` pushes, else the result is
    loaded into the local image store.
    """

    context: Path
    dockerfile: Path
    tags: Sequence[str]
    labels: Mapping[str, str] = field(default_factory=dict)
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    platforms: Sequence[str] = ()
    contexts: Mapping[str, str] = field(default_factory=dict)
    push: bool = False
    iidfile: Path | None = None


def build_argv(req: BuildRequest) -> list[str]:
    """The ``docker buildx build`` argv for ``req``."""
    argv = [DOCKER, "buildx", "build", "--progress=plain", "--file", str(req.dockerfile)]
    for tag in req.tags:
        argv += ["--tag", tag]
    for key, value in sorted(req.labels.items()):
        argv += ["--label", f"{key}={value}"]
    for key, value in sorted(req.build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    if req.target:
        argv += ["--target", req.target]
    if req.platforms:
        argv += ["--platform", ",".join(req.platforms)]
    for name, image in sorted(req.contexts.items()):
        argv += ["--build-context", f"{name}=docker-image://{image}"]
    argv.append("--push" if req.push else "--load")
    if req.iidfile:
        argv += ["--iidfile", str(req.iidfile)]
    argv.append(str(req.context))
    return argv


def build(runner: Runner, req: BuildRequest, log: Path) -> str:
    """Run the build, output appended to ``log``; returns the image ID (``sha256:...``).

    Raises CommandError with the log's last lines on failure.
    """
    runner.run(build_argv(req), log=log, what=f"docker buildx build of {req.tags[0]}")
    if runner.dry or req.iidfile is None:
        return ""
    return req.iidfile.read_text().strip()


def save_argv(references: Iterable[str], dest: Path) -> list[str]:
    """``docker save`` of every reference into one tar at ``dest`` (shared layers once)."""
    return [DOCKER, "save", "--output", str(dest), *references]


def client() -> Any:
    """A ``docker`` SDK client from the environment (``DOCKER_HOST``...).

    Raises BuildkitError when the engine cannot be reached.
    """
    import docker

    try:
        c = docker.from_env()
        c.ping()
    except Exception as exc:  # docker.errors.DockerException and connection errors
        raise BuildkitError(
            f"cannot reach the Docker engine ({exc.__class__.__name__}); is dockerd running?"
        ) from None
    return c


def image_info(reference: str) -> dict[str, Any] | None:
    """``{"id", "labels", "platform"}`` of a local image, or None when it is not there."""
    import docker

    try:
        image = client().images.get(reference)
    except docker.errors.ImageNotFound:
        return None
    attrs = image.attrs
    return {
        "id": image.id,
        "labels": (attrs.get("Config") or {}).get("Labels") or {},
        "platform": f"{attrs.get('Os', '')}/{attrs.get('Architecture', '')}",
    }


def require_images(references: Iterable[str]) -> None:
    """Raise CommandError naming the first reference missing from the local image store."""
    for ref in references:
        if image_info(ref) is None:
            raise CommandError(f"image {ref} is not in the local image store; run inv image.build")


# With the containerd image store, the engine's build resolver asks a reference's registry
# before its own store (moby/moby#46584), so a dependency named by its real reference could
# come from a registry. A dependency is therefore handed to its dependents under a run-unique
# alias whose registry is a closed loopback port: the registry lookup is refused at once and the
# engine's own store answers.
ALIAS_REGISTRY = "localhost:1/buildkit-tasks"


def alias_reference(name: str, run_id: str) -> str:
    """The local-only alias of image ``name`` for one run."""
    return f"{ALIAS_REGISTRY}/{name}:{run_id}"


def tag(source: str, target: str) -> None:
    """Add reference ``target`` to the local image ``source`` (docker SDK)."""
    repository, _, tag_ = target.rpartition(":")
    client().images.get(source).tag(repository, tag_)


def untag(reference: str) -> None:
    """Remove reference ``reference`` from the local store, keeping the image's other names."""
    import docker

    try:
        client().images.remove(reference, noprune=True)
    except docker.errors.NotFound:
        pass


def engine_platform() -> str:
    """The engine's own platform, e.g. ``linux/amd64``."""
    info = client().version()
    return f"{info.get('Os', 'linux')}/{info.get('Arch', 'amd64')}"
