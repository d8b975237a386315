"""errors: Ctrl-C held over a block that must not be split."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from buildkit_tasks import errors


def ctrl_c() -> None:
    """A real SIGINT to this process; its handler runs before the next line does."""
    os.kill(os.getpid(), signal.SIGINT)


def test_a_ctrl_c_inside_a_held_block_is_raised_as_it_ends(sigint_watched: None) -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt), errors.held_sigint():
        ctrl_c()
        steps.append("after the signal")
        with errors.held_sigint():  # nested: raised as the outermost ends
            steps.append("inner")
        steps.append("end of the block")
    assert steps == ["after the signal", "inner", "end of the block"]
    assert errors.lost_sigint()  # remembered until code that stops the run takes it
    errors.take_sigint()
    with errors.held_sigint():  # taken: a later block is not interrupted by it
        steps.append("later")
    assert steps[-1] == "later"


def test_outside_a_held_block_a_ctrl_c_is_raised_at_once(sigint_watched: None) -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        ctrl_c()
        steps.append("after the signal")
    assert steps == []
    errors.take_sigint()


def test_a_held_block_ending_in_an_error_still_raises_the_ctrl_c(sigint_watched: None) -> None:
    with pytest.raises(KeyboardInterrupt) as caught, errors.held_sigint():
        ctrl_c()
        raise ValueError("failed meanwhile")
    assert isinstance(caught.value.__context__, ValueError)
    errors.take_sigint()


def test_a_held_block_in_another_thread_holds_nothing() -> None:
    ran: list[bool] = []

    def body() -> None:
        with errors.held_sigint():
            ran.append(errors._held == 0)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert ran == [True]
