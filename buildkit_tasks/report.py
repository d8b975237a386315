"""``build-report.json``, ``build-report.md`` and ``SHA256SUMS`` in ``<output_dir>``.

Each task writes its own section of the report (``images``, ``charts``, ``artifacts``...) so a
task run alone still leaves a report; a report written for another version is started afresh.
The JSON follows :data:`SCHEMA_FILE` (JSON Schema 2020-12, shipped in the wheel); the Markdown
twin is a summary for CI job pages. Writes are atomic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .console import emit
from .fsutil import sha256_file, write_text_atomic
from .versioning import VersionInfo

SCHEMA = "buildkit-tasks/build-report/v1"
SUMS = "SHA256SUMS"
SCHEMA_FILE = "build-report-v1.schema.json"
MARKDOWN = "build-report.md"
#: ``SUMS`` signed with cosign (build.all, when a signing key is configured).
SUMS_SIGNATURE = f"{SUMS}.sig"
NOT_ARTIFACTS = {SUMS, SUMS_SIGNATURE, "build-report.json", "build-report.md"}
# Sub-directories of output_dir that are not this build's artifacts (logs; results of hosts).
NOT_ARTIFACT_DIRS = {"logs", "hosts"}


def load(path: Path) -> dict[str, Any]:
    """The report at ``path``, or ``{}`` when missing or unreadable. A report that is not a
    JSON object (a crash of something else, a hand edit) is said once on stderr and then
    replaced by the next :func:`update`, never fatal."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        emit(f"warning: {path} is not a readable report; starting a new one", err=True)
        return {}
    return data


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
    write_text_atomic(path.with_name(MARKDOWN), markdown(report))
    return report


def schema() -> dict[str, Any]:
    """The JSON Schema of ``build-report.json`` (``buildkit_tasks/schema/``)."""
    from importlib import resources

    text = resources.files("buildkit_tasks.schema").joinpath(SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(report: dict[str, Any]) -> str:
    """``build-report.md``: the version, then a table per section present."""
    v = report.get("version", {})
    commit = (v.get("commit") or "")[:12] or "no git"
    status = f"; status **{report['status']}**" if report.get("status") else ""
    lines = [
        f"# Build {v.get('version', '?')}",
        "",
        f"Commit `{commit}`{' (dirty)' if v.get('dirty') else ''}, branch "
        f"`{v.get('branch') or '-'}`, built {v.get('build_date', '?')}{status}.",
    ]

    def table(title: str, head: str, rows: list[str]) -> None:
        if rows:
            cols = head.count("|") - 1
            align = "|" + "|".join([" --- "] * cols) + "|"
            lines.extend(["", f"## {title}", "", head, align, *rows])

    table(
        "Images",
        "| image | status | seconds | reference |",
        [
            f"| {_cell(i.get('name', '?'))} | {i.get('status', '?')} | "
            f"{i.get('seconds', 0):.1f} | "
            f"`{_cell((i.get('references') or [''])[0] or i.get('error', ''))}` |"
            for i in report.get("images") or []
        ],
    )
    table(
        "Size budgets",
        "| image | size MB | budget MB | |",
        [
            f"| {_cell(b.get('name', '?'))} | {b.get('size_mb', 0):.1f} | "
            f"{b.get('max_size_mb', 0):g} | {'**over**' if b.get('over') else 'ok'} |"
            for b in report.get("size_budgets") or []
        ],
    )
    table(
        "Charts",
        "| chart | version | appVersion | file |",
        [
            f"| {_cell(c.get('name', '?'))} | {c.get('version', '')} | "
            f"{c.get('app_version', '')} | `{_cell(c.get('path', ''))}` |"
            for c in report.get("charts") or []
        ],
    )
    arch = report.get("archive")
    if arch:
        lines += [
            "",
            "## Archive",
            "",
            f"`{arch.get('path')}`: {len(arch.get('images', []))} images, "
            f"{arch.get('size', 0) / 1e6:.1f} MB, compression {arch.get('compression')}, "
            f"sha256 `{str(arch.get('sha256', ''))[:16]}…`",
        ]
    table(
        "Hosts",
        "| host | status | seconds | result |",
        [
            f"| {_cell(h.get('host', '?'))} | {h.get('status', '?')} | "
            f"{h.get('seconds', 0):.1f} | {_cell(h.get('artifacts') or h.get('error') or '')} |"
            for h in report.get("hosts") or []
        ],
    )
    table(
        "Artifacts",
        "| file | sha256 |",
        [
            f"| `{_cell(a.get('path', '?'))}` | `{a.get('sha256', '')}` |"
            for a in report.get("artifacts") or []
        ],
    )
    return "\n".join(lines) + "\n"


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
    file was written) are used as they are instead of reading the file again. A signature of
    the previous ``SHA256SUMS`` (``SHA256SUMS.sig``) is removed."""
    known = known or {}
    entries = [
        {"path": f.relative_to(output_dir).as_posix(), "sha256": known.get(f) or sha256_file(f)}
        for f in files
    ]
    text = "".join(f"{e['sha256']}  {e['path']}\n" for e in entries)
    (output_dir / SUMS_SIGNATURE).unlink(missing_ok=True)  # signed another SHA256SUMS
    write_text_atomic(output_dir / SUMS, text)
    return entries


def verify_checksums(output_dir: Path) -> list[str]:
    """Check ``<output_dir>/SHA256SUMS`` (when present): returns the entries that fail,
    each with why: a line that is not ``<sha256>  <path>``, a path that is absolute or leaves
    ``output_dir`` (never read: the file covers our artifacts only), a missing file or one
    whose sha256 differs (empty when all hold or there is no such file)."""
    sums = output_dir / SUMS
    if not sums.is_file():
        return []
    bad = []
    root = output_dir.resolve()
    try:
        text = sums.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return [f"{SUMS} is not UTF-8 text"]
    for number, line in enumerate(text.splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest) or not name:
            bad.append(f"line {number} is not '<sha256>  <path>': {line[:60]!r}")
            continue
        path = (output_dir / name).resolve()
        if Path(name).is_absolute() or not path.is_relative_to(root):
            bad.append(f"{name} (outside {output_dir.name}/; not checked)")
        elif not path.is_file():
            bad.append(f"{name} (missing)")
        elif sha256_file(path) != digest:
            bad.append(f"{name} (sha256 differs)")
    return bad
