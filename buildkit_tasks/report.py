"""``build-report.json`` and ``SHA256SUMS`` in ``<output_dir>``.

Each task writes its own section of the report (``images``, ``charts``, ``artifacts``) so a
task run alone still leaves a report; a report written for another version is started afresh.
Writes are atomic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .fsutil import sha256_file, write_text_atomic
from .versioning import VersionInfo

SCHEMA = "buildkit-tasks/build-report/v1"
SUMS = "SHA256SUMS"
NOT_ARTIFACTS = {SUMS, "build-report.json", "build-report.md"}
# Sub-directories of output_dir that are not this build's artifacts (logs; results of hosts).
NOT_ARTIFACT_DIRS = {"logs", "hosts"}


def load(path: Path) -> dict[str, Any]:
    """The report at ``path``, or ``{}`` when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def update(path: Path, info: VersionInfo, **sections: Any) -> dict[str, Any]:
    """Set ``sections`` in the report at ``path`` for version ``info``; returns the report."""
    report = load(path)
    old = report.get("version") or {}
    if (old.get("version"), old.get("commit")) != (info.version, info.commit):
        report = {}
    report["schema"] = SCHEMA
    report["version"] = info.as_dict()
    report.update(sections)
    write_text_atomic(path, json.dumps(report, indent=2, sort_keys=False) + "\n")
    return report


def artifacts(output_dir: Path) -> list[Path]:
    """Every artifact in ``output_dir``: all regular files except the report, ``SHA256SUMS``,
    ``logs/``, ``hosts/`` (what remote hosts brought back) and hidden (temporary) files; sorted."""
    out = []
    for p in sorted(output_dir.rglob("*")):
        rel = p.relative_to(output_dir)
        if not p.is_file() or rel.parts[0] in NOT_ARTIFACT_DIRS or p.name in NOT_ARTIFACTS:
            continue
        if any(part.startswith(".") for part in rel.parts):
            continue
        out.append(p)
    return out


def write_checksums(
    output_dir: Path, files: Iterable[Path], known: Mapping[Path, str] | None = None
) -> list[dict[str, str]]:
    """Write ``<output_dir>/SHA256SUMS`` (``sha256sum -c`` format, paths relative to
    ``output_dir``); returns ``[{"path", "sha256"}]``. ``known`` digests (computed while the
    file was written) are used as they are instead of reading the file again."""
    known = known or {}
    entries = [
        {"path": f.relative_to(output_dir).as_posix(), "sha256": known.get(f) or sha256_file(f)}
        for f in files
    ]
    text = "".join(f"{e['sha256']}  {e['path']}\n" for e in entries)
    write_text_atomic(output_dir / SUMS, text)
    return entries


def verify_checksums(output_dir: Path) -> list[str]:
    """Check ``<output_dir>/SHA256SUMS`` (when present): returns the paths whose file is
    missing or whose sha256 differs (empty when all hold or there is no such file)."""
    sums = output_dir / SUMS
    if not sums.is_file():
        return []
    bad = []
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, sep, name = line.partition("  ")
        if not sep:
            bad.append(line[:60])
            continue
        path = output_dir / name
        if not path.is_file() or sha256_file(path) != digest:
            bad.append(name)
    return bad
