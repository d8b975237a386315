"""Signatures of pushed images: what ``image.sign`` signs and ``image.verify`` checks.

The images are the report's (``<output_dir>/build-report.json``, written by ``image.push``):
each image that carries a registry ``digest`` is signed as ``<repository>@<digest>`` (by digest:
a tag can be moved, a digest cannot). Results go back into the report (``signatures``,
``verification``). cosign itself is driven through :mod:`.engines.cosign`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .config import Settings
from .engines import cosign
from .errors import BuildkitError, CommandError, ConfigError
from .references import name_and_tag
from .runner import Runner


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


def signing_key(settings: Settings) -> str:
    """cosign's ``--key`` for signing: config ``cosign_key`` (a file), else env
    ``BUILDKIT_COSIGN_KEY`` (the key itself). Raises ConfigError when neither is set or the
    file is missing."""
    key = settings.cosign_key
    if key is None and not os.environ.get(cosign.KEY_ENV):
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
    when no public key is configured or the file is missing."""
    public = settings.cosign_public_key
    if public is None:
        raise ConfigError("cosign_public_key: not set; name the public key file to verify with")
    if not public.is_file():
        raise ConfigError(f"cosign_public_key {public}: no such file")
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
