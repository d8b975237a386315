import random
import threading
import time
from collections.abc import Callable

import pytest

from buildkit_tasks.errors import BuildkitError
from buildkit_tasks.scheduler import Status, longest_paths, run_graph


def chain_graph(depth: int, fanout: int) -> dict[str, list[str]]:
    """base <- l1 <- l2 ... (depth deep), each level also having ``fanout`` leaves, plus an
    independent island."""
    g: dict[str, list[str]] = {"base": []}
    prev = "base"
    for i in range(1, depth + 1):
        g[f"l{i}"] = [prev]
        for j in range(fanout):
            g[f"l{i}-leaf{j}"] = [prev]
        prev = f"l{i}"
    g.update({"island": [], "island-child": ["island"]})
    return g


def test_runs_each_job_after_its_dependencies() -> None:
    g = chain_graph(4, 2)
    finished: list[str] = []
    lock = threading.Lock()

    def job(name: str) -> str:
        with lock:
            assert all(d in finished for d in g[name]), name
        time.sleep(random.random() / 500)
        with lock:
            finished.append(name)
        return name.upper()

    out = run_graph(g, job, workers=3)
    assert sorted(finished) == sorted(g)
    assert all(o.status is Status.SUCCEEDED and o.value == n.upper() for n, o in out.items())


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_failed_base_under_deep_chain_never_hangs_and_reports_all(workers: int) -> None:
    g = chain_graph(4, 3)
    for _ in range(50):

        def job(name: str) -> None:
            time.sleep(random.random() / 2000)
            if name == "base":
                raise BuildkitError("boom")

        result: dict = {}

        def run(job=job, result=result) -> None:
            result.update(run_graph(g, job, workers=workers))

        t = threading.Thread(target=run)
        t.start()
        t.join(timeout=10)
        assert not t.is_alive(), "scheduler hung"
        assert set(result) == set(g)
        assert result["base"].status is Status.FAILED and result["base"].error == "boom"
        assert result["island"].status is Status.SUCCEEDED
        assert result["island-child"].status is Status.SUCCEEDED
        for name in g:
            if name.startswith("l"):
                assert result[name].status is Status.SKIPPED
                assert result[name].error == "base failed"


def test_failure_in_the_middle_skips_only_dependents() -> None:
    g = chain_graph(4, 1)

    def job(name: str) -> None:
        if name == "l2":
            raise RuntimeError("bug")

    out = run_graph(g, job, workers=2)
    assert out["l2"].status is Status.FAILED and "RuntimeError: bug" in out["l2"].error
    assert out["l1"].status is Status.SUCCEEDED and out["l2-leaf0"].status is Status.SUCCEEDED
    assert out["l3"].status is out["l4"].status is out["l3-leaf0"].status is Status.SKIPPED
    assert out["l3"].error == "l2 failed"
    assert out["l4"].error == "l2 failed"


def test_fail_fast_starts_nothing_after_a_failure() -> None:
    g = {"a": [], "b": [], "c": [], "d": []}
    started: list[str] = []

    def job(name: str) -> None:
        started.append(name)
        if name == "a":
            raise BuildkitError("x")

    out = run_graph(g, job, workers=1, fail_fast=True, weight={"a": 10})
    assert started == ["a"]
    assert {n: o.status for n, o in out.items()} == {
        "a": Status.FAILED,
        "b": Status.SKIPPED,
        "c": Status.SKIPPED,
        "d": Status.SKIPPED,
    }
    assert "--fail-fast" in out["b"].error


def test_longest_remaining_path_goes_first() -> None:
    g = {"short": [], "long": [], "long2": ["long"], "long3": ["long2"]}
    assert longest_paths(g) == {"short": 1, "long": 3, "long2": 2, "long3": 1}
    order: list[str] = []
    run_graph(g, order.append, workers=1)
    assert order[0] == "long"


def test_cached_result_is_reported_as_cached() -> None:
    out = run_graph({"a": [], "b": ["a"]}, lambda n: (Status.CACHED, n), workers=2)
    assert out["a"].status is Status.CACHED and out["a"].value == "a"
    assert out["b"].status is Status.CACHED


def test_a_job_may_skip_itself_and_its_dependents() -> None:
    def job(name: str) -> object:
        return (Status.SKIPPED, "linux/arm64 not in its platforms") if name == "a" else name

    out = run_graph({"a": [], "b": ["a"], "c": []}, job, workers=2, fail_fast=True)
    assert out["a"].status is Status.SKIPPED and "platforms" in out["a"].error
    assert out["b"].status is Status.SKIPPED and out["b"].error == "a skipped"
    assert out["c"].status is Status.SUCCEEDED  # a skip is not a failure: fail-fast stays calm


def test_a_ctrl_c_python_lost_still_stops_the_graph(lose_a_ctrl_c: Callable) -> None:
    from buildkit_tasks import errors

    stopped = threading.Event()
    lose_a_ctrl_c(0.3)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_graph(
            {"a": set(), "b": {"a"}},
            lambda name: stopped.wait(30) or "built",
            on_interrupt=stopped.set,
            stop_wait=5,
        )
    assert stopped.is_set() and time.monotonic() - started < 5
    assert not errors.lost_sigint()  # taken: cleanup that follows is not interrupted again


def test_inline_jobs_run_in_the_calling_thread_after_what_they_need() -> None:
    preds = {"a": [], "b": ["a"], "c": ["b"], "d": ["a"], "e": ["c", "d"]}
    where: dict[str, str] = {}
    order: list[str] = []
    lock = threading.Lock()

    def job(name: str) -> str:
        with lock:
            where[name] = threading.current_thread().name
            order.append(name)
        return name

    out = run_graph(preds, job, workers=2, inline=lambda n: n in ("b", "e"))
    assert all(o.status is Status.SUCCEEDED for o in out.values())
    me = threading.current_thread().name
    assert where["b"] == me and where["e"] == me
    assert all(where[n] != me for n in ("a", "c", "d"))
    for name, needs in preds.items():
        assert all(order.index(p) < order.index(name) for p in needs)
