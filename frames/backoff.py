"""One reconnect backoff for every part that reconnects: masters, bus owners and clients. Pure.

Full-jitter exponential backoff (the delay is drawn uniformly from ``[0, min(max, min * 2**n)]``)
so a thousand clients dropped by one restart do not come back in lock-step; a floor keeps a
tight loop from spinning when the draw is near zero. The randomness is a parameter, so tests
are deterministic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays for successive reconnect attempts; :meth:`reset` after a success.

    ``min_s`` is both the first ceiling and the floor of every delay; ``max_s`` caps the
    ceiling. ``jitter=False`` gives plain doubling (for the few places that must be exact).
    """

    min_s: float = 0.05
    max_s: float = 5.0
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempts: int = 0

    def __post_init__(self) -> None:
        if self.min_s <= 0 or self.max_s < self.min_s:
            raise ValueError("backoff needs 0 < min_s <= max_s")

    def ceiling(self) -> float:
        """The largest delay the next attempt may get."""
        return min(self.max_s, self.min_s * (2.0 ** min(self.attempts, 60)))

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        top = self.ceiling()
        self.attempts += 1
        if not self.jitter:
            return top
        return max(self.min_s, self.rng.uniform(0.0, top))

    def reset(self) -> None:
        self.attempts = 0
