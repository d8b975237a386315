"""Signatures of pushed images: what ``image.sign`` signs and ``image.verify`` checks.

The images are the report's (``<output_dir>/build-report.json``, written by ``image.push``):
each image that carries a registry ``digest`` is signed as ``<repository>@<digest>`` (by digest:
a tag can be moved, a digest cannot), and each of its platform manifests gets its SPDX SBOM
(syft or trivy, :mod:`.engines.sbom`) attached as a signed cosign attestation. Results go back
into the report (``signatures``, ``sboms``, ``verification``). cosign itself is driven through
:mod:`.engines.cosign`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import Settings
from .engines import cosign, sbom
from .errors import BuildkitError, CommandError, ConfigError
from .fsutil import atomic_path
from .references import name_and_tag
from .report import SUMS, SUMS_SIGNATURE
from .runner import Runner, find_tool

#: The in-toto predicate type cosign gives an ``spdxjson`` attestation.
SPDX_PREDICATE = "https://spdx.dev/Document"


@dataclass(frozen=True)
class Signed:
    """One image's signing or signature check: ``reference`` is ``repository@digest``;
    ``ok`` whether it was signed / carries a good signature; ``error`` cosign's last line."""

    name: str
    reference: str
    ok: bool
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def pushed_images(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(name, repository@digest)`` of every image the report says is in the registry.
    Raises BuildkitError when there is none (nothing pushed yet: run image.push)."""
    out = []
    for image in report.get("images") or []:
        digest, refs = image.get("digest"), image.get("references") or []
        if digest and refs and image.get("status") in ("succeeded", "cached"):
            repository, _ = name_and_tag(refs[0])
            out.append((str(image["name"]), f"{repository}@{digest}"))
    if not out:
        raise BuildkitError("the build report lists no pushed image: run image.push first")
    return out


@dataclass(frozen=True)
class Sbom:
    """One platform manifest's SBOM attestation: ``reference`` is ``repository@digest`` of
    that platform's manifest; ``path`` the SPDX JSON file kept (relative to ``output_dir``);
    ``packages`` how many packages it lists; ``error`` the failing step's last line."""

    name: str
    platform: str
    reference: str
    ok: bool
    generator: str
    path: str | None = None
    packages: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def platform_manifests(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(name, platform, repository@digest)`` of each pushed platform manifest in the report
    (``platform_digests``; a single-platform image pushed as a plain manifest is its
    ``digest`` with its one platform)."""
    out = []
    for image in report.get("images") or []:
        digest, refs = image.get("digest"), image.get("references") or []
        if not (digest and refs and image.get("status") in ("succeeded", "cached")):
            continue
        repository, _ = name_and_tag(refs[0])
        per_platform = image.get("platform_digests") or {}
        if not per_platform and len(image.get("platforms") or []) == 1:
            per_platform = {image["platforms"][0]: digest}
        for platform, pdigest in sorted(per_platform.items()):
            out.append((str(image["name"]), platform, f"{repository}@{pdigest}"))
    return out


def sbom_generator() -> tuple[str, str] | None:
    """``(generator, program path)`` of the first SBOM generator installed
    (:data:`.engines.sbom.GENERATORS`: syft, then trivy), or None."""
    for generator in sbom.GENERATORS:
        program = find_tool(generator)
        if program is not None:
            return generator, program
    return None


def attach_sboms(
    settings: Settings,
    runner: Runner,
    report: Mapping[str, Any],
    generator: tuple[str, str],
) -> list[Sbom]:
    """For each pushed platform manifest of ``report`` (:func:`platform_manifests`): write its
    SPDX JSON SBOM with ``generator`` (:func:`sbom_generator`) to
    ``<output_dir>/sbom/<name>.<os>-<arch>.spdx.json`` (through a temporary file), and attach
    it with ``cosign attest --type spdxjson``, signed with the configured key
    (:func:`signing_key`). A manifest either step fails for is a :class:`Sbom` with ``ok``
    false. Raises ConfigError without a key."""
    key = signing_key(settings)
    cosign.require()
    out = []
    for name, platform, ref in platform_manifests(report):
        file_name = f"{name.replace('/', '_')}.{platform.replace('/', '-')}.spdx.json"
        dest = settings.output_dir / "sbom" / file_name
        log = settings.logs_dir / f"{name}.sbom.log"
        try:
            count = _write_sbom(runner, generator, ref, platform, dest, log)
            argv = cosign.attest_argv(key, ref, dest, sbom.PREDICATE_TYPE, settings.tlog_upload)
            runner.run(argv, log=log, what=f"attesting the SBOM of {ref}")
        except (CommandError, BuildkitError) as exc:
            error = _last_line(exc) if isinstance(exc, CommandError) else str(exc)
            out.append(Sbom(name, platform, ref, False, generator[0], error=error))
            continue
        rel = str(dest.relative_to(settings.output_dir))
        out.append(Sbom(name, platform, ref, True, generator[0], rel, count))
    return out


def _write_sbom(
    runner: Runner, generator: tuple[str, str], ref: str, platform: str, dest: Path, log: Path
) -> int | None:
    """Write ``ref``'s SPDX SBOM to ``dest`` (whole or not at all); returns its package count
    (None under ``--dry``, which only shows the command)."""
    name, program = generator
    what = f"{name} SBOM of {ref}"
    env = sbom.environment(name)
    if runner.dry:
        runner.run(sbom.argv(name, program, ref, platform, dest), env=env, what=what)
        return None
    with atomic_path(dest) as tmp:
        runner.run(sbom.argv(name, program, ref, platform, tmp), env=env, log=log, what=what)
        return len(sbom.packages(tmp))


def verify_sboms(settings: Settings, runner: Runner, report: Mapping[str, Any]) -> list[Sbom]:
    """Check the SBOM attestations the report's ``sboms`` lists as attached: each platform
    manifest must carry an SPDX attestation about its own digest that verifies with config
    ``cosign_public_key`` (:func:`public_key`)."""
    public = public_key(settings)
    out = []
    for entry in report.get("sboms") or []:
        if not entry.get("ok"):
            continue
        ref = str(entry["reference"])
        res = runner.run(
            cosign.verify_attestation_argv(public, ref, sbom.PREDICATE_TYPE, settings.tlog_upload),
            capture=True,
            check=False,
            stderr_to_devnull=True,
            query=True,
        )
        digest = ref.rpartition("@")[2]
        ok = res.ok and digest in cosign.attested_subjects(res.stdout, SPDX_PREDICATE)
        error = None if ok else f"no SPDX attestation of {ref} verifies with {public}"
        out.append(
            Sbom(str(entry["name"]), str(entry["platform"]), ref, ok, str(entry["generator"]),
                 error=error)
        )  # fmt: skip
    return out


def key_configured(settings: Settings) -> bool:
    """Whether a signing key is configured (config ``cosign_key`` or env
    ``BUILDKIT_COSIGN_KEY``)."""
    return settings.cosign_key is not None or bool(os.environ.get(cosign.KEY_ENV))


def sign_checksums(settings: Settings, runner: Runner) -> Path:
    """Sign ``<output_dir>/SHA256SUMS`` (which covers every artifact: the image archive,
    charts, version files) with the configured key into ``<output_dir>/SHA256SUMS.sig``
    (whole or not at all); returns that path. Raises ConfigError without a key, BuildkitError
    without ``SHA256SUMS``, CommandError when cosign fails (output in
    ``<output_dir>/logs/SHA256SUMS.sign.log``)."""
    key = signing_key(settings)
    cosign.require()
    sums = settings.output_dir / SUMS
    signature = sums.with_name(SUMS_SIGNATURE)
    log = settings.logs_dir / f"{SUMS}.sign.log"
    if runner.dry:
        runner.run(cosign.sign_blob_argv(key, sums, signature, settings.tlog_upload))
        return signature
    if not sums.is_file():
        raise BuildkitError(f"{sums}: not found; run inv archive.export first")
    with atomic_path(signature) as tmp:
        argv = cosign.sign_blob_argv(key, sums, tmp, settings.tlog_upload)
        runner.run(argv, log=log, what=f"signing {SUMS}")
    return signature


def verify_checksums_signature(settings: Settings, runner: Runner) -> bool:
    """Whether ``<output_dir>/SHA256SUMS.sig`` is a good signature of ``SHA256SUMS`` by the
    key matching config ``cosign_public_key`` (:func:`public_key`)."""
    public = public_key(settings)
    sums = settings.output_dir / SUMS
    argv = cosign.verify_blob_argv(
        public, sums, sums.with_name(SUMS_SIGNATURE), settings.tlog_upload
    )
    return runner.run(argv, capture=True, check=False, stderr_to_devnull=True, query=True).ok


def public_key(settings: Settings) -> Path:
    """Config ``cosign_public_key``, the file signatures are checked with. Raises ConfigError
    when it is not set or the file is missing."""
    public = settings.cosign_public_key
    if public is None:
        raise ConfigError("cosign_public_key: not set; name the public key file to verify with")
    if not public.is_file():
        raise ConfigError(f"cosign_public_key {public}: no such file")
    return public


def signing_key(settings: Settings) -> str:
    """cosign's ``--key`` for signing: config ``cosign_key`` (a file), else env
    ``BUILDKIT_COSIGN_KEY`` (the key itself). Raises ConfigError when neither is set or the
    file is missing."""
    key = settings.cosign_key
    if not key_configured(settings):
        raise ConfigError(
            f"cosign_key: not set; name a private key file (cosign generate-key-pair), or put "
            f"the key in env {cosign.KEY_ENV}"
        )
    if key is not None and not key.is_file():
        raise ConfigError(f"cosign_key {key}: no such file")
    return cosign.key_argument(key)


def sign(settings: Settings, runner: Runner, report: Mapping[str, Any]) -> list[Signed]:
    """Sign every pushed image of ``report`` by digest with the configured key
    (:func:`signing_key`; password from env ``COSIGN_PASSWORD``), ``tlog_upload`` as
    configured. An image that cosign fails to sign is a :class:`Signed` with ``ok`` false."""
    key = signing_key(settings)
    cosign.require()
    out = []
    for name, ref in pushed_images(report):
        argv = cosign.sign_argv(key, ref, settings.tlog_upload)
        try:
            runner.run(argv, log=settings.logs_dir / f"{name}.sign.log", what=f"signing {ref}")
        except CommandError as exc:
            out.append(Signed(name, ref, False, _last_line(exc)))
            continue
        out.append(Signed(name, ref, True))
    return out


def verify(settings: Settings, runner: Runner, report: Mapping[str, Any]) -> list[Signed]:
    """Check every pushed image of ``report`` for a signature made with the key matching
    config ``cosign_public_key`` (Rekor asked only when ``tlog_upload``). Raises ConfigError
    when no public key is configured or the file is missing (:func:`public_key`)."""
    public = public_key(settings)
    cosign.require()
    out = []
    for name, ref in pushed_images(report):
        res = runner.run(
            cosign.verify_argv(public, ref, settings.tlog_upload),
            capture=True,
            check=False,
            stderr_to_devnull=True,
            query=True,
        )
        digest = ref.rpartition("@")[2]
        if res.ok and digest in cosign.verified_digests(res.stdout):
            out.append(Signed(name, ref, True))
        else:
            out.append(Signed(name, ref, False, f"no signature of {ref} verifies with {public}"))
    return out


def _last_line(exc: CommandError) -> str:
    lines = [ln for ln in (exc.output_tail or str(exc)).splitlines() if ln.strip()]
    return lines[-1] if lines else str(exc)
