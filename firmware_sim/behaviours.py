"""How a register's value moves over time, so dashboards show live data.

A behaviour is a frozen spec (what a profile says); :meth:`start` gives a :class:`Signal`, the
per-register state. A signal's value is a function of the elapsed time the caller passes in and
of its own seeded RNG: nothing here reads a clock, so a test drives time by hand and two runs
with the same seed see the same values.

Values are in engineering units (the profile's ``scale`` and ``unit`` apply afterwards).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from typing import Any, ClassVar

__all__ = [
    "BEHAVIOURS",
    "Behaviour",
    "Constant",
    "Counter",
    "RandomWalk",
    "Signal",
    "Sine",
    "Uptime",
    "behaviour_from_table",
]

# A random walk asked for a value far in the future replays at most this many steps: the
# walk stays bounded in CPU however long the simulator ran unread.
MAX_CATCHUP_STEPS = 10_000


class Signal:
    """The live state of one register: ``value(elapsed)`` and ``rebase`` after a write."""

    wraps: ClassVar[bool] = False  # counters wrap at the register width; the rest clamp
    _held: float | None = None

    def value(self, elapsed: float) -> float:
        raise NotImplementedError

    def rebase(self, value: float, elapsed: float) -> None:
        """A master wrote ``value``: by default the register holds it from now on."""
        self._held = value


@dataclass(frozen=True)
class Behaviour:
    """Base of the behaviour specs; ``kind`` is the name profiles use."""

    kind: ClassVar[str] = ""

    def start(self, base: float, seed: str) -> Signal:
        raise NotImplementedError

    def check(self) -> None:
        """Raise ValueError naming the bad parameter."""


@dataclass(frozen=True)
class Constant(Behaviour):
    """Stays at the initial (or last written) value."""

    kind: ClassVar[str] = "constant"

    def start(self, base: float, seed: str) -> Signal:
        return _ConstantSignal(base)


class _ConstantSignal(Signal):
    def __init__(self, base: float) -> None:
        self.base = base

    def value(self, elapsed: float) -> float:
        return self.base

    def rebase(self, value: float, elapsed: float) -> None:
        self.base = value


@dataclass(frozen=True)
class Counter(Behaviour):
    """Adds ``step`` every ``interval`` seconds and wraps at the register width (like energy
    or packet counters). A write resets it: it keeps counting from the written value."""

    kind: ClassVar[str] = "counter"
    step: float = 1.0
    interval: float = 1.0

    def check(self) -> None:
        _positive("interval", self.interval)

    def start(self, base: float, seed: str) -> Signal:
        return _CounterSignal(base, self.step, self.interval)


class _CounterSignal(Signal):
    wraps = True

    def __init__(self, base: float, step: float, interval: float) -> None:
        self.base, self.step, self.interval = base, step, interval

    def value(self, elapsed: float) -> float:
        return self.base + self.step * math.floor(max(elapsed, 0.0) / self.interval)

    def rebase(self, value: float, elapsed: float) -> None:
        self.base = value - (self.value(elapsed) - self.base)


@dataclass(frozen=True)
class Uptime(Behaviour):
    """Seconds since the device started (plus the initial value), wrapping at the width."""

    kind: ClassVar[str] = "uptime"

    def start(self, base: float, seed: str) -> Signal:
        return _UptimeSignal(base)


class _UptimeSignal(Signal):
    wraps = True

    def __init__(self, base: float) -> None:
        self.base = base

    def value(self, elapsed: float) -> float:
        return self.base + math.floor(max(elapsed, 0.0))

    def rebase(self, value: float, elapsed: float) -> None:
        self.base = value - math.floor(max(elapsed, 0.0))


@dataclass(frozen=True)
class Sine(Behaviour):
    """``mean + amplitude * sin(2π t / period + phase)``: a slow, smooth wave (temperatures)."""

    kind: ClassVar[str] = "sine"
    mean: float = 0.0
    amplitude: float = 1.0
    period: float = 60.0
    phase: float = 0.0  # radians

    def check(self) -> None:
        _positive("period", self.period)

    def start(self, base: float, seed: str) -> Signal:
        return _SineSignal(self)


class _SineSignal(Signal):
    def __init__(self, spec: Sine) -> None:
        self.spec = spec

    def value(self, elapsed: float) -> float:
        held = self._held
        if held is not None:
            return held
        s = self.spec
        return s.mean + s.amplitude * math.sin(2 * math.pi * elapsed / s.period + s.phase)


@dataclass(frozen=True)
class RandomWalk(Behaviour):
    """Every ``interval`` seconds moves by a uniform step in ``[-step, step]``, kept within
    ``[low, high]``. Seeded per device and register, so a rerun with the same seed repeats."""

    kind: ClassVar[str] = "random_walk"
    step: float = 1.0
    interval: float = 1.0
    low: float = -math.inf
    high: float = math.inf

    def check(self) -> None:
        _positive("interval", self.interval)
        if self.step < 0:
            raise ValueError("step: must be >= 0")
        if self.low > self.high:
            raise ValueError("low: must not exceed high")

    def start(self, base: float, seed: str) -> Signal:
        return _RandomWalkSignal(self, base, seed)


class _RandomWalkSignal(Signal):
    def __init__(self, spec: RandomWalk, base: float, seed: str) -> None:
        self.spec = spec
        self.current = min(max(base, spec.low), spec.high)
        self.steps = 0
        self.rng = random.Random(seed)

    def _advance(self, elapsed: float) -> None:
        target = math.floor(max(elapsed, 0.0) / self.spec.interval)
        if target - self.steps > MAX_CATCHUP_STEPS:
            self.steps = target - MAX_CATCHUP_STEPS
        s = self.spec
        while self.steps < target:
            self.current = min(max(self.current + self.rng.uniform(-s.step, s.step), s.low), s.high)
            self.steps += 1

    def value(self, elapsed: float) -> float:
        self._advance(elapsed)
        return self.current

    def rebase(self, value: float, elapsed: float) -> None:
        self._advance(elapsed)
        self.current = value


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name}: must be > 0, got {value}")


BEHAVIOURS: dict[str, type[Behaviour]] = {
    cls.kind: cls for cls in (Constant, Counter, Uptime, Sine, RandomWalk)
}


def behaviour_from_table(table: Any) -> Behaviour:
    """A behaviour from its TOML form: ``"uptime"`` or ``{kind = "sine", period = 30, ...}``.

    Raises ValueError whose message starts with the offending key (``kind``, ``period``...), so
    the profile loader can prefix the file and register.
    """
    if isinstance(table, str):
        table = {"kind": table}
    if not isinstance(table, dict):
        raise ValueError("must be a behaviour name or a table with 'kind'")
    kind = table.get("kind")
    if kind not in BEHAVIOURS:
        raise ValueError(f"kind: unknown behaviour {kind!r} (expected one of {sorted(BEHAVIOURS)})")
    cls = BEHAVIOURS[kind]
    allowed = {f.name for f in fields(cls)}
    params: dict[str, float] = {}
    for key, value in table.items():
        if key == "kind":
            continue
        if key not in allowed:
            raise ValueError(f"{key}: not a parameter of {kind} (expected {sorted(allowed)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key}: must be a number, got {value!r}")
        params[key] = float(value)
    spec = cls(**params)
    spec.check()
    return spec
