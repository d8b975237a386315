from __future__ import annotations

import pytest

from buildkit_tasks import batches


def test_cut_keeps_build_order_in_batches_of_at_most_size() -> None:
    names = [f"i{n}" for n in range(7)]
    assert batches.cut(names, 3) == [["i0", "i1", "i2"], ["i3", "i4", "i5"], ["i6"]]
    assert batches.cut(names, 40) == [names]
    assert batches.cut([], 3) == []
    with pytest.raises(ValueError, match="at least 1"):
        batches.cut(names, 0)


def test_halves() -> None:
    assert batches.halves(["a", "b", "c"]) == [["a", "b"], ["c"]]
    assert batches.halves(["a"]) == [["a"], []]


@pytest.mark.parametrize(
    "tail",
    [
        "ERROR: failed to receive status: rpc error: code = NotFound desc = no such job x",
        "ERROR: DeadlineExceeded: context deadline exceeded",
        'ERROR: Invalid name "base.x"; only "[a-zA-Z0-9_-]+" are allowed',
        "ERROR: failed to solve: failed to commit b0suw3 to omzkw5 during finalize: failed to "
        "stat active key during commit: snapshot b0suw3 does not exist: not found",
    ],
)
def test_engine_errors_are_told_from_image_failures(tail: str) -> None:
    log = f"#5 [api 1/2] RUN make\n#5 DONE 1.0s\n{tail}\n"
    assert batches.engine_error(log) == tail


def test_a_failed_step_is_the_image_s_failure_even_if_the_engine_complains_after() -> None:
    log = (
        '#7 ERROR: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3\n'
        "ERROR: failed to solve: rpc error: code = Internal desc = x\n"
    )
    assert batches.engine_error(log) is None
    assert batches.engine_error("ERROR: failed to solve: failed to compute cache key") is None


class FakeEngine:
    """Bakes what it is given, failing every batch larger than ``carries`` with an engine
    error, and any batch holding ``broken`` with an image failure (after building the images
    before it)."""

    def __init__(self, carries: int, broken: str | None = None) -> None:
        self.carries, self.broken = carries, broken
        self.built: list[str] = []
        self.bakes: list[list[str]] = []

    def bake(self, names: list[str]) -> tuple[bool, str | None]:
        self.bakes.append(names)
        if len(names) > self.carries:
            return False, "ERROR: failed to receive status: no such job"
        if self.broken in names:
            self.built += names[: names.index(self.broken)]
            return False, None
        self.built += names
        return True, None


def test_batches_the_engine_fails_are_retried_in_halves_until_they_fit() -> None:
    names = [f"i{n:02d}" for n in range(10)]
    engine = FakeEngine(carries=3)
    retries: list[batches.Retry] = []
    assert batches.run(names, 10, engine.bake, engine.built.__contains__, retries.append)
    assert engine.built == names  # everything, in build order
    assert [len(b) for b in engine.bakes] == [10, 5, 3, 2, 5, 3, 2]
    assert retries[0].parts == (tuple(names[:5]), tuple(names[5:]))
    assert "no such job" in retries[0].why


def test_single_images_are_left_to_the_caller() -> None:
    engine = FakeEngine(carries=1)
    assert batches.run(["a", "b"], 2, engine.bake, engine.built.__contains__)
    assert engine.bakes == [["a", "b"]] and engine.built == []  # halves of one: per image


def test_an_image_failure_stops_batching() -> None:
    names = [f"i{n}" for n in range(9)]
    engine = FakeEngine(carries=9, broken="i4")
    assert not batches.run(names, 3, engine.bake, engine.built.__contains__)
    assert engine.bakes == [names[:3], names[3:6]]  # no bake after the failed one
    assert engine.built == ["i0", "i1", "i2", "i3"]
