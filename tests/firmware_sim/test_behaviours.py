"""Behaviours as pure functions of elapsed time and seed."""

from __future__ import annotations

import math

import pytest

from firmware_sim.behaviours import (
    MAX_CATCHUP_STEPS,
    Constant,
    Counter,
    RandomWalk,
    Sine,
    Uptime,
    behaviour_from_table,
)


def test_constant_holds_base_and_writes() -> None:
    sig = Constant().start(7.5, "s")
    assert sig.value(0) == sig.value(1e6) == 7.5
    sig.rebase(3.0, 10)
    assert sig.value(11) == 3.0


def test_counter_steps_per_interval_and_rebases() -> None:
    sig = Counter(step=2, interval=0.5).start(10, "s")
    assert sig.wraps
    assert [sig.value(t) for t in (0, 0.49, 0.5, 1.0, 2.2)] == [10, 10, 12, 14, 18]
    sig.rebase(0, 2.2)  # a master resets the counter
    assert sig.value(2.2) == 0
    assert sig.value(2.5) == 2  # keeps counting on the same grid


def test_uptime_counts_whole_seconds() -> None:
    sig = Uptime().start(0, "s")
    assert [sig.value(t) for t in (0, 0.9, 1.0, 61.7)] == [0, 0, 1, 61]
    sig.rebase(100, 61.7)
    assert sig.value(62.0) == 101


def test_sine_shape_and_write_holds() -> None:
    sig = Sine(mean=20, amplitude=2, period=40).start(0, "s")
    assert sig.value(0) == pytest.approx(20)
    assert sig.value(10) == pytest.approx(22)
    assert sig.value(30) == pytest.approx(18)
    sig.rebase(25, 31)
    assert sig.value(50) == 25


def test_random_walk_is_seeded_bounded_and_lazy() -> None:
    spec = RandomWalk(step=1, interval=1, low=0, high=5)
    a, b, c = spec.start(2.5, "seed-1"), spec.start(2.5, "seed-1"), spec.start(2.5, "seed-2")
    seq_a = [a.value(t) for t in range(50)]
    # Reading only at the end gives the same value as reading every step: lazy replay.
    assert b.value(49) == seq_a[-1]
    assert seq_a != [c.value(t) for t in range(50)]
    assert all(0 <= v <= 5 for v in seq_a)
    assert len(set(seq_a)) > 10  # it moves
    assert a.value(0.5) == seq_a[-1]  # time going backwards does not rewind state


def test_random_walk_catch_up_is_bounded() -> None:
    sig = RandomWalk(step=1, interval=1e-6).start(0, "s")
    sig.value(1e6)  # 1e12 steps: must not take forever
    assert sig.steps == math.floor(1e6 / 1e-6)  # type: ignore[attr-defined]
    assert MAX_CATCHUP_STEPS <= 10_000


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"kind": "sin"}, "kind: unknown behaviour 'sin'"),
        ({"kind": "sine", "periode": 3}, "periode: not a parameter of sine"),
        ({"kind": "sine", "period": "3"}, "period: must be a number"),
        ({"kind": "sine", "period": 0}, "period: must be > 0"),
        ({"kind": "counter", "interval": -1}, "interval: must be > 0"),
        ({"kind": "random_walk", "low": 5, "high": 1}, "low: must not exceed high"),
        (42, "must be a behaviour name"),
    ],
)
def test_bad_behaviour_tables(table: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        behaviour_from_table(table)


def test_behaviour_from_table_forms() -> None:
    assert behaviour_from_table("uptime") == Uptime()
    assert behaviour_from_table({"kind": "counter", "step": 5}) == Counter(step=5.0)
