"""Step ranges: nothing without a profiler, profiler ranges while one records, wall-clock times on request."""

import contextlib
import time

import torch

from bmtpt_cli.runtime.profiling import phase, wall_clock_phases


def test_a_phase_is_a_no_op_when_nothing_records():
    assert isinstance(phase("bmtpt.x"), contextlib.nullcontext)


def test_wall_clock_phases_add_up_each_range_by_name_and_end_with_the_block():
    with wall_clock_phases() as outer:
        for _ in range(2):
            with phase("bmtpt.sleep"):
                time.sleep(0.02)
        with wall_clock_phases() as inner:
            with phase("bmtpt.inner"):
                pass
        with phase("bmtpt.after"):
            pass
    assert set(outer) == {"bmtpt.sleep", "bmtpt.after"} and set(inner) == {"bmtpt.inner"}
    assert 0.04 <= outer["bmtpt.sleep"] < 1.0
    assert isinstance(phase("bmtpt.x"), contextlib.nullcontext)  # the block is over


def test_a_phase_is_a_profiler_range_while_a_profiler_records():
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with phase("bmtpt.ranged"):
            torch.ones(3).sum()
    assert "bmtpt.ranged" in {event.key for event in prof.key_averages()}
