"""git: one way to ask a work tree something, and the argv of what tasks run with it."""

from __future__ import annotations

import subprocess
from pathlib import Path


def output(root: Path, *args: str) -> str | None:
    """stdout of ``git <args>`` run in ``root`` (undecodable bytes kept as surrogates, not
    stripped), or None when git is missing or exits non-zero."""
    try:
        res = subprocess.run(["git", *args], cwd=root, capture_output=True)
    except OSError:
        return None
    return res.stdout.decode("utf-8", "surrogateescape") if res.returncode == 0 else None


def line(root: Path, *args: str) -> str | None:
    """:func:`output` stripped; None when empty."""
    out = output(root, *args)
    return out.strip() or None if out is not None else None


def ok(root: Path, *args: str) -> bool:
    """Whether ``git <args>`` run in ``root`` exits 0 (False when git is missing)."""
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True).returncode == 0
    except OSError:
        return False


IDENTITY = ("-c", "user.name=buildkit-tasks", "-c", "user.email=buildkit-tasks@localhost")


def commit_argv(checkout: Path, message: str) -> list[str]:
    """``git commit`` in ``checkout``; with a stand-in identity when git has none configured
    there (a CI machine), so publishing never stops at "Please tell me who you are"."""
    has_identity = line(checkout, "config", "user.email") is not None
    return [
        "git",
        *(() if has_identity else IDENTITY),
        "-C",
        str(checkout),
        "commit",
        "-q",
        "-m",
        message,
    ]
