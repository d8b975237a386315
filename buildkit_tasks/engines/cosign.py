"""cosign (Sigstore): signing pushed images by digest and checking those signatures.

Only argv and output parsing live here; :mod:`..signing` decides what is signed. The private
key's password reaches cosign through its own environment variable ``COSIGN_PASSWORD`` (never
argv); a key given by environment is named ``env://VAR`` (its content never reaches argv
either). Debian trixie's ``cosign`` 2.5 links only libc and runs on bookworm.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

COSIGN = "cosign"
KEY_ENV = "BUILDKIT_COSIGN_KEY"
INSTALL = "install cosign (Debian trixie's 'cosign' package, or a release from sigstore)"


def require() -> None:
    """Raise BuildkitError with the way to install ``cosign`` when it is not on PATH."""
    from ..errors import BuildkitError
    from ..runner import find_tool

    if find_tool(COSIGN) is None:
        raise BuildkitError(f"cosign: command not found; signing needs it: {INSTALL}")


def key_argument(key_file: Path | None) -> str:
    """cosign's ``--key`` value: the key file, else ``env://BUILDKIT_COSIGN_KEY``."""
    return str(key_file) if key_file is not None else f"env://{KEY_ENV}"


def sign_argv(key: str, reference: str, tlog_upload: bool) -> list[str]:
    """``cosign sign`` of ``reference`` (``repository@sha256:...``: by digest, never a tag)
    with private key ``key`` (:func:`key_argument`); ``tlog_upload`` false keeps the
    signature out of the Rekor transparency log (private registries, offline)."""
    return [
        COSIGN, "sign", "--key", key, f"--tlog-upload={str(tlog_upload).lower()}", "--yes",
        reference,
    ]  # fmt: skip


def verify_argv(public_key: Path, reference: str, tlog: bool) -> list[str]:
    """``cosign verify`` of ``reference`` against ``public_key``; ``tlog`` false does not ask
    Rekor for the signature's log entry (signed with ``--tlog-upload=false``)."""
    argv = [COSIGN, "verify", "--key", str(public_key), "--output", "json"]
    if not tlog:
        argv.append("--insecure-ignore-tlog=true")
    return [*argv, reference]


def verified_digests(output: str) -> set[str]:
    """The image digests ``cosign verify --output json`` says carry a good signature (its
    stdout: a JSON list, ``critical.image.docker-manifest-digest`` of each)."""
    try:
        entries = json.loads(output)
    except ValueError:
        return set()
    out = set()
    for e in entries if isinstance(entries, list) else []:
        digest = ((e.get("critical") or {}).get("image") or {}).get("docker-manifest-digest")
        if isinstance(digest, str):
            out.add(digest)
    return out


def attest_argv(
    key: str, reference: str, predicate: Path, predicate_type: str, tlog_upload: bool
) -> list[str]:
    """``cosign attest``: the document in file ``predicate`` (e.g. an SPDX SBOM,
    ``predicate_type`` ``spdxjson``) signed with ``key`` as an in-toto attestation of
    ``reference`` (``repository@sha256:...``), stored beside it in the registry."""
    return [
        COSIGN, "attest", "--key", key, "--type", predicate_type, "--predicate", str(predicate),
        f"--tlog-upload={str(tlog_upload).lower()}", "--yes", reference,
    ]  # fmt: skip


def verify_attestation_argv(
    public_key: Path, reference: str, predicate_type: str, tlog: bool
) -> list[str]:
    """``cosign verify-attestation`` of ``reference``'s attestations of ``predicate_type``
    against ``public_key`` (``tlog`` as in :func:`verify_argv`)."""
    argv = [COSIGN, "verify-attestation", "--key", str(public_key), "--type", predicate_type]
    if not tlog:
        argv.append("--insecure-ignore-tlog=true")
    return [*argv, reference]


def attested_subjects(output: str, predicate_type_uri: str) -> set[str]:
    """``sha256:...`` digests that verified attestations of ``predicate_type_uri`` (e.g.
    ``https://spdx.dev/Document``) are about: ``cosign verify-attestation`` prints one DSSE
    envelope per line, its base64 ``payload`` an in-toto statement naming its subjects."""
    out = set()
    for line in output.splitlines():
        try:
            envelope = json.loads(line)
            statement = json.loads(base64.b64decode(envelope["payload"]))
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(statement, dict) or statement.get("predicateType") != predicate_type_uri:
            continue
        for subject in statement.get("subject") or []:
            digest = (subject.get("digest") or {}).get("sha256")
            if isinstance(digest, str):
                out.add(f"sha256:{digest}")
    return out


def sign_blob_argv(key: str, path: Path, signature: Path, tlog_upload: bool) -> list[str]:
    """``cosign sign-blob``: file ``path`` signed with ``key``, the base64 signature written
    to file ``signature``."""
    return [
        COSIGN, "sign-blob", "--key", key, f"--tlog-upload={str(tlog_upload).lower()}", "--yes",
        "--output-signature", str(signature), str(path),
    ]  # fmt: skip


def verify_blob_argv(public_key: Path, path: Path, signature: Path, tlog: bool) -> list[str]:
    """``cosign verify-blob`` of file ``path`` against the signature in file ``signature``
    and ``public_key`` (``tlog`` as in :func:`verify_argv`)."""
    argv = [COSIGN, "verify-blob", "--key", str(public_key), "--signature", str(signature)]
    if not tlog:
        argv.append("--insecure-ignore-tlog=true")
    return [*argv, str(path)]
