"""ORAS (``oras``, the CNCF OCI Registry As Storage CLI): copying an OCI image layout into a
registry by digest, without a tag.

Why ORAS: the engine's own ``docker`` buildx driver cannot push by digest ("push-by-digest is
currently not implemented for docker driver"), and ``docker buildx imagetools`` reads only
registries. ``oras cp --from-oci-layout DIR@DIGEST REPOSITORY`` uploads the layout's blobs and
the manifest (list) under its digest alone, keeping every byte (so the digest is the build's),
attestation manifests included. Debian trixie's ``oras`` 1.2 links only libc and runs on
bookworm; trixie's ``skopeo`` needs glibc 2.38 and does not.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from ..errors import BuildkitError
from ..references import is_loopback, registry_host

ORAS = "oras"
INSTALL = (
    "install ORAS (Debian trixie's 'oras' package, or a release binary from oras.land), "
    "or pass --no-atomic (config atomic = false) to push tags directly"
)


def copy_argv(layout: Path, digest: str, repository: str) -> list[str]:
    """``oras cp`` of the manifest ``digest`` in the OCI layout archive ``layout`` to
    ``repository`` (no tag: stored under its digest only). Loopback registries are spoken to
    over plain HTTP, as Docker does. Credentials come from Docker's config (``DOCKER_CONFIG``)."""
    argv = [ORAS, "cp", "--no-tty", "--from-oci-layout", f"{layout}@{digest}", repository]
    if is_loopback(registry_host(repository)):
        argv.append("--to-plain-http")
    return argv


def layout_digest(layout: Path) -> str:
    """The digest of the one manifest (list) an exporter wrote to the OCI layout archive
    ``layout`` (its ``index.json``), checked to be in the archive. Raises BuildkitError
    otherwise.

    An archive, not a directory: with a second exporter (the local store) BuildKit 0.13's
    ``tar=false`` layout of a single-platform build names an index it did not write."""
    try:
        with tarfile.open(layout) as tar:
            names = set(tar.getnames())
            member = tar.extractfile("index.json")
            index = json.loads(member.read() if member else b"")
        (digest,) = {str(entry["digest"]) for entry in index["manifests"]}  # one per tag
    except (OSError, ValueError, KeyError, TypeError, tarfile.TarError) as exc:
        raise BuildkitError(
            f"{layout}: expected the OCI layout of one image ({exc.__class__.__name__})"
        ) from None
    algorithm, _, hexdigest = digest.partition(":")
    if f"blobs/{algorithm}/{hexdigest}" not in names:
        raise BuildkitError(f"{layout}: its index.json names {digest}, which it does not hold")
    return digest


def failure_summary(output: str) -> str:
    """The lines of ``oras`` output that say why it failed. A Go panic in oras-go's concurrent
    copy (oras-go#916, fixed after oras 1.2: two requests failing at once, as against a
    registry answering 5xx) is summed up as the temporary failure it is, so it is retried."""
    lines = output.splitlines()
    why = [ln for ln in lines if ln.lower().startswith("error")]
    if any(ln.startswith("panic: sync/atomic") for ln in lines):
        why.append("error: oras panicked on concurrent request failures (oras-go#916): temporary")
    return "\n".join(why)


def require() -> None:
    """Raise BuildkitError with the way to install ``oras`` when it is not on PATH."""
    from ..runner import find_tool

    if find_tool(ORAS) is None:
        raise BuildkitError(f"oras: command not found; atomic pushes need it: {INSTALL}")
