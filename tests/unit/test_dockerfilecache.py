from __future__ import annotations

from pathlib import Path

import pytest

from buildkit_tasks import dockerfilecache, dockerfiles

TEXT = """\
# syntax=docker/dockerfile:1
ARG BASE=localhost:5000/acme/base
FROM ${BASE}:1.0 AS build
LABEL org.opencontainers.image.title="acme builder"
RUN <<EOF
echo built > /out
EOF
FROM scratch
COPY --from=build /out /out
COPY --from=localhost:5000/acme/tools:2 /bin/tool /bin/tool
"""


def new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new process starts with: nothing parsed, the cache file not read yet."""
    monkeypatch.setattr(dockerfilecache, "_KEPT", dockerfilecache._Kept())
    dockerfiles._parsed.cache_clear()


@pytest.fixture
def dockerfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BUILDKIT_CACHE_HOME", str(tmp_path / "cache"))
    new_process(monkeypatch)
    path = tmp_path / "Dockerfile"
    path.write_text(TEXT)
    return path


def parsed_here(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts :func:`dockerfiles.parse` is asked to parse from now on."""
    calls: list[str] = []
    real = dockerfiles.parse

    def parse(text: str, build_args: dict[str, str] | None = None) -> dockerfiles.Dockerfile:
        calls.append(text)
        return real(text, build_args)

    monkeypatch.setattr(dockerfiles, "parse", parse)
    return calls


def test_a_later_run_reads_what_an_earlier_one_parsed(
    dockerfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = dockerfiles.load(dockerfile, {"BASE": "localhost:5000/acme/other"})
    dockerfilecache.save()
    new_process(monkeypatch)
    calls = parsed_here(monkeypatch)
    again = dockerfiles.load(dockerfile, {"BASE": "localhost:5000/acme/other"})
    assert again == first and calls == []
    assert [u.reference for u in again.uses[0]] == ["localhost:5000/acme/other:1.0"]
    # other build args, or an edited text, are parsed anew
    assert dockerfiles.load(dockerfile).uses[0][0].reference == "localhost:5000/acme/base:1.0"
    dockerfile.write_text(TEXT.replace("tools:2", "tools:3"))
    assert dockerfiles.load(dockerfile).uses[1][-1].reference == "localhost:5000/acme/tools:3"
    assert len(calls) == 2


def test_nothing_is_written_when_nothing_was_parsed_anew(
    dockerfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dockerfiles.load(dockerfile)
    dockerfilecache.save()
    kept = dockerfilecache.cache_home() / dockerfilecache.FILE
    text = kept.read_text()
    kept.write_text(text + " ")  # a rewrite would drop the trailing space
    new_process(monkeypatch)
    dockerfiles.load(dockerfile)
    dockerfilecache.save()
    assert kept.read_text() == text + " "


@pytest.mark.parametrize("damage", ["not json", "entry", "parser"])
def test_a_damaged_or_stale_cache_is_parsed_anew(
    dockerfile: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    want = dockerfiles.load(dockerfile)
    dockerfilecache.save()
    kept = dockerfilecache.cache_home() / dockerfilecache.FILE
    if damage == "not json":
        kept.write_text("{truncated")
    elif damage == "entry":
        kept.write_text(kept.read_text().replace('[[[0,"build"', '[[["zero"'))
    else:  # another parser (this package or the extension upgraded)
        monkeypatch.setattr(dockerfilecache, "_parser_version", lambda: "another parser")
    new_process(monkeypatch)
    calls = parsed_here(monkeypatch)
    assert dockerfiles.load(dockerfile) == want
    assert calls == [TEXT]


def test_planning_keeps_what_it_parsed_for_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from buildkit_tasks import buildplan
    from tests.unit.test_buildplan import make_project

    monkeypatch.setenv("BUILDKIT_CACHE_HOME", str(tmp_path / "cache"))
    new_process(monkeypatch)
    settings = make_project(tmp_path / "p")
    first = buildplan.make(settings).graph
    new_process(monkeypatch)
    calls = parsed_here(monkeypatch)
    again = buildplan.make(settings).graph
    assert calls == []
    assert {n: g.depends_on for n, g in again.nodes.items()} == {
        n: g.depends_on for n, g in first.nodes.items()
    }
