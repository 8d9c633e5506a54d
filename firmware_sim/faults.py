"""Seeded fault decisions: which reply to drop, corrupt, pad with garbage, split or delay.

Pure: :class:`FaultInjector` turns one encoded reply into a :class:`Delivery` (the chunks to
write and when); the I/O layer carries it out. A seeded RNG per device makes a failing test
replay exactly. Every reply draws its random numbers whether or not a fault fires, so
turning one fault's probability up does not reshuffle the others' decisions.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError

__all__ = ["NO_FAULTS", "Delivery", "FaultConfig", "FaultInjector", "OfflineWindow", "wire_time"]


@dataclass(frozen=True)
class OfflineWindow:
    """The device is off from ``start`` for ``duration`` seconds after the bus opened: it
    neither acts on nor answers anything (not even broadcasts)."""

    start: float
    duration: float

    def covers(self, elapsed: float) -> bool:
        return self.start <= elapsed < self.start + self.duration


@dataclass(frozen=True)
class FaultConfig:
    """What can go wrong, as probabilities per reply and seconds. All off by default."""

    drop_reply: float = 0.0  # the reply is lost (the request still took effect)
    corrupt_byte: float = 0.0  # one byte of the reply is flipped (the host sees a CRC error)
    garbage: float = 0.0  # 1..garbage_max random bytes go out just before the reply
    garbage_max: int = 8
    split_writes: float = 0.0  # the reply is written in 2..4 pieces, split_gap apart
    split_gap: float = 0.002
    delay: float = 0.0  # extra seconds before every reply
    jitter: float = 0.0  # plus a uniform 0..jitter seconds
    offline: tuple[OfflineWindow, ...] = ()

    def __post_init__(self) -> None:
        for name in ("drop_reply", "corrupt_byte", "garbage", "split_writes"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise ConfigError(f"faults.{name}: a probability 0..1, got {p!r}")
        for name in ("split_gap", "delay", "jitter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < math.inf:
                raise ConfigError(f"faults.{name}: seconds >= 0, got {v!r}")
        if not isinstance(self.garbage_max, int) or not 1 <= self.garbage_max <= 255:
            raise ConfigError(f"faults.garbage_max: 1..255 bytes, got {self.garbage_max!r}")
        for i, w in enumerate(self.offline):
            if not (w.start >= 0 and w.duration > 0):
                raise ConfigError(f"faults.offline[{i}]: start >= 0 and duration > 0 required")

    @property
    def active(self) -> bool:
        return self != NO_FAULTS

    def is_offline(self, elapsed: float) -> bool:
        return any(w.covers(elapsed) for w in self.offline)

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "faults") -> FaultConfig:
        """From a TOML table; ``offline = [{start = 5, duration = 2}]``. Unknown keys fail."""
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: must be a table")
        allowed = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in table.items():
            if key not in allowed:
                raise ConfigError(f"{where}.{key}: unknown fault (expected {sorted(allowed)})")
            if key == "offline":
                kwargs[key] = _windows(value, f"{where}.offline")
            elif key == "garbage_max":
                kwargs[key] = value
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}.{key}: must be a number, got {value!r}")
            else:
                kwargs[key] = float(value)
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("faults.", f"{where}.", 1)) from None


def _windows(value: Any, where: str) -> tuple[OfflineWindow, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be an array of {{start = s, duration = s}} tables")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or set(item) != {"start", "duration"}:
            raise ConfigError(f"{where}[{i}]: must be {{start = seconds, duration = seconds}}")
        start, duration = item["start"], item["duration"]
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, duration)
        ):
            raise ConfigError(f"{where}[{i}]: start and duration must be numbers")
        out.append(OfflineWindow(float(start), float(duration)))
    return tuple(out)


NO_FAULTS = FaultConfig()


@dataclass(frozen=True)
class Delivery:
    """How one reply goes out: ``delay`` seconds after the request, then ``chunks`` written
    ``gap`` seconds apart. Empty ``chunks`` means the reply was dropped."""

    chunks: tuple[bytes, ...]
    delay: float = 0.0
    gap: float = 0.0
    applied: tuple[str, ...] = ()

    @property
    def dropped(self) -> bool:
        return not self.chunks

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class FaultInjector:
    """One seeded RNG and the decisions drawn from it, for one device."""

    def __init__(self, seed: int | str = 0) -> None:
        self.seed = seed
        self._rng = random.Random(f"faults:{seed}")

    def plan(self, reply: bytes, config: FaultConfig = NO_FAULTS) -> Delivery:
        """The delivery of ``reply`` under ``config``."""
        if not config.active:
            return Delivery((reply,))
        rng = self._rng
        # Draw every number up front: the stream of decisions does not depend on outcomes.
        p_drop, p_corrupt, p_garbage, p_split, u_jitter = (rng.random() for _ in range(5))
        corrupt_at = rng.randrange(len(reply)) if reply else 0
        corrupt_xor = rng.randrange(1, 256)
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, config.garbage_max)))
        pieces = rng.randint(2, 4)
        cuts = sorted(rng.sample(range(1, len(reply)), min(pieces - 1, len(reply) - 1)))
        applied: list[str] = []
        delay = config.delay + u_jitter * config.jitter
        if config.delay or config.jitter:
            applied.append("delay")
        if p_drop < config.drop_reply:
            return Delivery((), delay, 0.0, ("drop_reply",))
        data = bytearray(reply)
        if p_corrupt < config.corrupt_byte and data:
            data[corrupt_at] ^= corrupt_xor
            applied.append("corrupt_byte")
        chunks: list[bytes] = [bytes(data)]
        if p_split < config.split_writes and cuts:
            bounds = [0, *cuts, len(data)]
            chunks = [bytes(data[a:b]) for a, b in itertools.pairwise(bounds)]
            applied.append("split_writes")
        if p_garbage < config.garbage:
            chunks[0] = junk + chunks[0]
            applied.append("garbage")
        gap = config.split_gap if len(chunks) > 1 else 0.0
        return Delivery(tuple(chunks), delay, gap, tuple(applied))


def wire_time(nbytes: int, baudrate: int) -> float:
    """Seconds ``nbytes`` take on a UART at ``baudrate`` (8N1: ten bits a byte)."""
    return nbytes * 10 / baudrate
