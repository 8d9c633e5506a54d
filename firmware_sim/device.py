"""A simulated device: a profile's register map brought to life, behind a ``frames`` Slave.

Pure: every method that needs the time takes ``now`` (seconds, any monotonic origin). The
device serves the standard commands through :class:`frames.slave.Slave`, so the protocol rules
(addressing, broadcast, error replies) are the same code real slave programs use; this module
only supplies the register logic. Writes are all-or-nothing: WRITE_REGS checks every register
before changing any, as firmware that validates a whole request would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from frames.commands import STANDARD, CommandRegistry, ErrorCode
from frames.errors import DeviceFault
from frames.format import DEFAULT_FORMAT, FrameFormat
from frames.frame import Frame
from frames.register import Value
from frames.slave import Request, Slave

from .behaviours import Signal
from .errors import RegisterError
from .faults import FaultConfig, FaultInjector
from .profile import Profile, load_profile
from .registers import Register

__all__ = ["DeviceCounters", "SimulatedDevice"]

Clock = Callable[[], float]


@dataclass
class DeviceCounters:
    frames_in: int = 0  # requests for this address, plus broadcasts, while online
    replies_out: int = 0  # replies produced (normal and error), before faults
    error_replies: int = 0
    broadcasts: int = 0
    ignored_offline: int = 0  # frames that arrived while the device was off
    faults: Counter[str] = field(default_factory=Counter)  # fault kind → times applied

    @property
    def faults_applied(self) -> int:
        return sum(self.faults.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames_in": self.frames_in,
            "replies_out": self.replies_out,
            "error_replies": self.error_replies,
            "broadcasts": self.broadcasts,
            "ignored_offline": self.ignored_offline,
            "faults_applied": self.faults_applied,
            "faults": dict(self.faults),
        }


class SimulatedDevice:
    """One slave address with a profile's registers.

    ``uid`` defaults to the profile's uid plus the address. ``seed`` seeds the behaviours'
    RNGs and the fault decisions. ``faults`` None means "use the bus's faults" (a bus fills it
    in); a :class:`FaultConfig` here overrides the bus for this device. ``clock`` is only used
    by the convenience accessors when no ``now`` is given (a bus passes its loop's clock).
    """

    def __init__(
        self,
        address: int,
        profile: Profile | str = "thermo",
        *,
        uid: int | None = None,
        seed: int | str = 0,
        faults: FaultConfig | None = None,
        clock: Clock | None = None,
        registry: CommandRegistry = STANDARD,
        fmt: FrameFormat = DEFAULT_FORMAT,
    ) -> None:
        self.profile = profile if isinstance(profile, Profile) else load_profile(profile)
        self.slave = Slave(address, registry=registry, fmt=fmt)
        self.address = address
        self.uid = (self.profile.uid + address) & 0xFFFFFFFF if uid is None else uid
        self.seed = seed
        self.faults = faults
        self.clock = clock
        self.counters = DeviceCounters()
        self.injector = FaultInjector(f"{seed}:{address}")
        self._t0: float | None = None
        self._last_now = 0.0
        self._forced_offline = False
        self._offline_until: float | None = None
        self._signals: dict[int, Signal] = {
            r.address: r.behaviour.start(r.initial, f"{seed}:{address}:{r.address}")
            for r in self.profile.registers
        }
        for cmd, handler in (
            ("identify", self._identify),
            ("echo", self._echo),
            ("read_regs", self._read_regs),
            ("write_reg", self._write_reg),
            ("write_regs", self._write_regs),
        ):
            self.slave.add_handler(cmd, handler)

    def __repr__(self) -> str:
        return f"SimulatedDevice({self.address}, {self.profile.name!r}, uid=0x{self.uid:08x})"

    # -- time -----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Set time zero: behaviours (uptime, sine phase...) and offline windows count from here."""
        self._t0 = now
        self._last_now = now

    def _now(self, now: float | None) -> float:
        if now is None:
            now = self.clock() if self.clock is not None else self._last_now
        if self._t0 is None:
            self._t0 = now
        self._last_now = max(self._last_now, now)
        return now

    def elapsed(self, now: float | None = None) -> float:
        now = self._now(now)
        assert self._t0 is not None
        return now - self._t0

    # -- online / offline -----------------------------------------------------------------

    def go_offline(self, duration: float | None = None, *, now: float | None = None) -> None:
        """Switch the device off: for ``duration`` seconds, or until :meth:`go_online`."""
        if duration is None:
            self._forced_offline = True
        else:
            self._offline_until = self._now(now) + duration

    def go_online(self) -> None:
        self._forced_offline = False
        self._offline_until = None

    def is_online(self, now: float | None = None) -> bool:
        now = self._now(now)
        if self._forced_offline:
            return False
        if self._offline_until is not None and now < self._offline_until:
            return False
        return not (self.faults is not None and self.faults.is_offline(self.elapsed(now)))

    # -- registers ------------------------------------------------------------------------

    def _words(self, reg: Register, now: float) -> list[int]:
        sig = self._signals[reg.address]
        value = sig.value(self.elapsed(now))
        return reg.to_words(value, wrap=True) if sig.wraps else reg.clamp_words(value)

    def read_registers(self, start: int, count: int, now: float | None = None) -> list[int]:
        """Raw words ``start..start+count-1``; a gap or an address past the map is code 2.
        A read may start or end inside a two-word register (it gets that word)."""
        now = self._now(now)
        out: list[int] = []
        cache: dict[int, list[int]] = {}  # one value per register per read: its words agree
        for address in range(start, start + count):
            hit = self.profile.word(address)
            if hit is None:
                raise RegisterError(
                    ErrorCode.ILLEGAL_REGISTER, f"{self.profile.name}: no register {address}"
                )
            reg, i = hit
            words = cache.get(reg.address)
            if words is None:
                words = cache[reg.address] = self._words(reg, now)
            out.append(words[i])
        return out

    def write_registers(
        self, start: int, raws: list[int], now: float | None = None, *, force: bool = False
    ) -> None:
        """Write raw words from ``start``, all or nothing. ``force`` also writes read-only
        registers and skips min/max (a test setting a sensor reading). A two-word register
        must be written whole (code 2 otherwise)."""
        now = self._now(now)
        regs: list[tuple[Register, list[int]]] = []
        address = start
        end = start + len(raws)
        while address < end:
            hit = self.profile.word(address)
            reg = hit[0] if hit is not None else None
            if reg is None or not (reg.writable or force):
                why = "no register" if reg is None else "read-only register"
                raise RegisterError(
                    ErrorCode.ILLEGAL_REGISTER, f"{self.profile.name}: {why} {address}"
                )
            if reg.address != address or address + reg.count > end:
                raise RegisterError(
                    ErrorCode.ILLEGAL_REGISTER,
                    f"{self.profile.name}: {reg.name} spans {reg.count} registers; write it whole",
                )
            words = raws[address - start : address - start + reg.count]
            if any(not 0 <= w <= 0xFFFF for w in words):
                raise RegisterError(ErrorCode.ILLEGAL_VALUE, f"{words} are not u16 words")
            if not force:
                reg.check_write_words(words)
            regs.append((reg, words))
            address += reg.count
        elapsed = self.elapsed(now)
        for reg, words in regs:
            self._signals[reg.address].rebase(_number(reg.value_of(words)), elapsed)

    def get(self, key: int | str, now: float | None = None) -> Value:
        """A register's engineering value, by name or address."""
        reg = self.profile.register(key)
        return reg.value_of(self._words(reg, self._now(now)))

    def get_raw(self, key: int | str, now: float | None = None) -> int:
        """A one-word register's raw word (the first word of a two-word one)."""
        return self._words(self.profile.register(key), self._now(now))[0]

    def get_words(self, key: int | str, now: float | None = None) -> list[int]:
        return self._words(self.profile.register(key), self._now(now))

    def set(self, key: int | str, value: float, now: float | None = None) -> None:
        """Set a register to an engineering value, writable or not (tests, scripted sensors)."""
        reg = self.profile.register(key)
        self.write_registers(reg.address, reg.to_words(value), now, force=True)

    def snapshot(self, now: float | None = None) -> dict[str, Value]:
        """Every register's engineering value, by name, in address order."""
        now = self._now(now)
        return {r.name: r.value_of(self._words(r, now)) for r in self.profile.registers}

    # -- protocol -------------------------------------------------------------------------

    def handle(self, frame: Frame, now: float | None = None) -> Frame | None:
        """The reply to ``frame`` (None: not for us, broadcast, or the device is off)."""
        now = self._now(now)
        if not self.slave.accepts(frame):
            return None
        if not self.is_online(now):
            self.counters.ignored_offline += 1
            return None
        self._handling_now = now
        self.counters.frames_in += 1
        if frame.is_broadcast:
            self.counters.broadcasts += 1
        reply = self.slave.handle(frame)
        if reply is not None:
            self.counters.replies_out += 1
            if reply.is_error:
                self.counters.error_replies += 1
        return reply

    def _identify(self, req: Request) -> Mapping[str, Any]:
        p = self.profile
        return {
            "model": p.model,
            "firmware": list(p.firmware),
            "uid": self.uid,
            "register_count": p.register_count,
        }

    def _echo(self, req: Request) -> bytes:
        return req.frame.data

    def _read_regs(self, req: Request) -> Mapping[str, Any]:
        f = _fields(req)
        return {"values": _faulted(self.read_registers, f["start"], f["count"], self._handling_now)}

    def _write_reg(self, req: Request) -> Mapping[str, Any]:
        f = _fields(req)
        _faulted(self.write_registers, f["reg"], [f["value"]], self._handling_now)
        return {"reg": f["reg"], "value": f["value"]}

    def _write_regs(self, req: Request) -> Mapping[str, Any]:
        f = _fields(req)
        _faulted(self.write_registers, f["start"], list(f["values"]), self._handling_now)
        return {"start": f["start"], "count": len(f["values"])}

    _handling_now: float = 0.0


def _fields(req: Request) -> dict[str, Any]:
    if req.fields is None:  # the registry does not know the command: cannot happen for ours
        raise DeviceFault(ErrorCode.ILLEGAL_COMMAND)
    return req.fields


def _faulted(func: Callable[..., Any], *args: Any) -> Any:
    """Run a register operation; a RegisterError becomes the Slave's DeviceFault (error reply)."""
    try:
        return func(*args)
    except RegisterError as exc:
        raise DeviceFault(exc.code, str(exc)) from exc


def _number(value: Value) -> float:
    """A decoded value as the number a behaviour holds (NaN/inf were refused before)."""
    return 0.0 if value is None else float(value)
