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
