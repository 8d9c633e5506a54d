from __future__ import annotations

import random

import pytest

from frames.backoff import Backoff


def test_ceiling_doubles_up_to_max_and_reset_restarts() -> None:
    b = Backoff(0.1, 1.0, jitter=False)
    assert [round(b.next_delay(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    b.reset()
    assert b.next_delay() == pytest.approx(0.1)


def test_jittered_delays_stay_between_floor_and_ceiling_and_spread() -> None:
    b = Backoff(0.05, 2.0, rng=random.Random(7))
    delays = []
    for _ in range(10):
        top = b.ceiling()
        d = b.next_delay()
        assert 0.05 <= d <= max(top, 0.05)
        delays.append(d)
    many = [Backoff(0.05, 2.0, rng=random.Random(i)) for i in range(50)]
    for m in many:
        for _ in range(5):
            m.next_delay()
    fifth = {round(m.next_delay(), 4) for m in many}
    assert len(fifth) > 40  # clients reconnecting together do not stay in lock-step


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)
