"""Publishing built images: tags pointed at what was built or reused, ``latest`` made in the
registry from the version tag, and the digests the registry reports. The last step of an
image build (:mod:`.images` plans and executes; this module publishes)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .engines import docker
from .runner import Runner


@dataclass(frozen=True)
class Published:
    """What the registry reports for a pushed image's version tag: the manifest (list)
    ``digest`` and each platform's manifest digest (both None when nothing was pushed)."""

    digest: str | None = None
    platform_digests: dict[str, str] | None = None
    attestations: dict[str, str] | None = None  # platform -> its attestation manifest digest


def read(runner: Runner, reference: str) -> Published:
    """What the registry holds under ``reference`` (a tag or ``repository@digest``)."""
    got, platforms, attested = docker.registry_index(runner, reference)
    return Published(got, platforms, attested or None)


def publish(runner: Runner, version_ref: str, latest_ref: str, digest: str | None) -> Published:
    """The registry's digests for ``version_ref``. For an image this run pushed (``digest``
    from the build's metadata), first check that the tag names what was pushed and point
    ``latest_ref`` at it (in the registry, the same manifest list); a cached image's tags were
    already pointed (``digest`` None). Under ``--dry`` only the tagging command is shown.

    With buildx 0.13.1 on the containerd image store the tag has been seen naming another
    manifest than the one just pushed (a single-platform one); the tag is then pointed at the
    pushed manifest list by digest, and a mismatch that remains is an error (CommandError)."""
    if runner.dry:  # nothing was pushed to ask about: show where latest would point
        if digest is not None:
            docker.remote_tag(runner, version_ref, latest_ref)
        return Published()
    if digest is not None and digest.startswith("sha256:"):
        got, platforms, attested = docker.ensure_tag(runner, version_ref, digest)
        published = Published(got, platforms, attested or None)
    else:
        published = read(runner, version_ref)
    if digest is not None:
        docker.remote_tag(runner, version_ref, latest_ref)
    return published


def point_tags(
    runner: Runner, image_id: str, held: Iterable[str], tags: Iterable[str], push: bool
) -> None:
    """Make every one of ``tags`` name a reused image: ``image_id`` in the local store, or
    with ``push`` the registry's image under the first of ``held`` (the tags already naming
    it, which are left alone)."""
    held = list(held)
    for ref in tags:
        if ref in held:
            continue
        if push:
            docker.remote_tag(runner, held[0], ref)
        else:
            docker.tag(image_id, ref)
