from __future__ import annotations

import random

import pytest

from buildkit_tasks import batches


def test_cut_keeps_build_order_in_batches_of_at_most_size() -> None:
    names = [f"i{n}" for n in range(7)]
    assert batches.cut(names, 3) == [["i0", "i1", "i2"], ["i3", "i4", "i5"], ["i6"]]
    assert batches.cut(names, 40) == [names]
    assert batches.cut([], 3) == []
    with pytest.raises(ValueError, match="at least 1"):
        batches.cut(names, 0)


def test_cut_makes_as_few_batches_as_size_allows_and_evens_them() -> None:
    names = [f"i{n}" for n in range(9)]
    assert [len(b) for b in batches.cut(names, 4)] == [3, 3, 3]  # not 4 + 4 + 1
    assert [len(b) for b in batches.cut(names + ["i9"], 4)] == [4, 4, 2]
    assert [len(b) for b in batches.cut(names, 4, {})] == [3, 3, 3]


def test_cut_keeps_chains_together() -> None:
    # two chains of three, listed level by level (build order): slices would put every
    # base in another batch than its dependent; kept together, none is
    names = ["a1", "b1", "a2", "b2", "a3", "b3"]
    deps = {"a2": ["a1"], "a3": ["a2"], "b2": ["b1"], "b3": ["b2"]}
    assert batches.cut(names, 3) == [["a1", "b1", "a2"], ["b2", "a3", "b3"]]
    assert batches.cut(names, 3, deps) == [["a1", "a2", "a3"], ["b1", "b2", "b3"]]


def test_an_image_with_two_bases_waits_for_both_and_joins_their_batch() -> None:
    names = ["a", "b", "c", "d", "ab"]
    deps = {"ab": ["a", "b", "outside-the-build"], "d": ["c"]}
    assert batches.cut(names, 3, deps) == [["a", "b", "ab"], ["c", "d"]]


def test_cut_never_puts_an_image_before_what_it_builds_on() -> None:
    rng = random.Random(15)
    for _ in range(200):
        names = [f"i{n}" for n in range(rng.randrange(1, 60))]
        deps = {n: rng.sample(names[:i], min(i, rng.randrange(3))) for i, n in enumerate(names)}
        size = rng.randrange(1, 12)
        cut = batches.cut(names, size, deps)
        assert sorted(n for b in cut for n in b) == sorted(names)
        assert all(len(b) <= size for b in cut)
        assert len(cut) == -(-len(names) // size)  # as few batches as size allows
        placed: set[str] = set()
        for batch in cut:
            for name in batch:
                assert set(deps[name]) <= placed, (name, deps[name], cut)
                placed.add(name)


def test_cut_refuses_a_cycle() -> None:
    with pytest.raises(ValueError, match="cycle: a, b"):
        batches.cut(["a", "b", "c"], 2, {"a": ["b"], "b": ["a"]})


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
