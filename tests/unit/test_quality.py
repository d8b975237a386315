import sys
from pathlib import Path

import pytest

from buildkit_tasks import quality
from buildkit_tasks.config import LINT_TOOLS
from buildkit_tasks.errors import BuildFailed, ConfigError


def test_linter_commands_check_without_rewriting() -> None:
    py = [sys.executable, "-m"]
    assert quality.linter_argvs("black", ["src"]) == [
        [*py, "black", "--check", "--diff", "--quiet", "--", "src"]
    ]
    assert quality.linter_argvs("isort", ["src"]) == [
        [*py, "isort", "--check-only", "--diff", "--", "src"]
    ]
    assert quality.linter_argvs("mypy", ["src"]) == [[*py, "mypy", "--", "src"]]
    assert [a[3] for a in quality.linter_argvs("ruff", ["."])] == ["check", "format"]
    with pytest.raises(ConfigError):
        quality.linter_argvs("pylint", ["."])


def test_a_path_that_looks_like_an_option_stays_a_path() -> None:
    """lint.paths = ["--fix", "src"] once made ruff rewrite files."""
    for tool in LINT_TOOLS:
        for argv in quality.linter_argvs(tool, ["--fix", "src"]):
            assert argv.index("--") < argv.index("--fix"), argv


def test_size_budgets_fail_with_the_measured_size() -> None:
    ok = quality.SizeCheck("base", "r/base:1", 4.0, 5.0)
    over = quality.SizeCheck("api", "r/api:1", 12.345, 10.0)
    quality.enforce_budgets([ok])
    with pytest.raises(BuildFailed, match=r"api is 12\.3 MB \(max_size_mb = 10\)"):
        quality.enforce_budgets([ok, over])


def test_trivy_command() -> None:
    assert quality.trivy_argv("r/a:1", "CRITICAL") == [
        "trivy",
        "image",
        "--quiet",
        "--severity",
        "CRITICAL",
        "--exit-code",
        "1",
        "r/a:1",
    ]


def test_scan_without_trivy_warns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from buildkit_tasks.config import Settings
    from buildkit_tasks.runner import Runner

    monkeypatch.setattr(quality, "find_tool", lambda name: None)
    assert quality.scan(Settings(root=tmp_path), ["r/a:1"], Runner()) is False
    assert "warning: trivy is not installed" in capsys.readouterr().err
