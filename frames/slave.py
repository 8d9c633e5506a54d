"""The slave side of the protocol, I/O-free: frames (or bytes) in, reply frames (or bytes) out.

A :class:`Slave` is one device address with a handler per command. Why it is shaped this way:

* Handlers are plain functions of a :class:`Request`, so device logic (``firmware_sim``, user
  programs) is testable without a port, and one :class:`Slave` serves a pty, a TCP socket or an
  in-memory pair unchanged.
* Nothing a handler does can take the device down: :class:`~frames.errors.DeviceFault` becomes an
  error reply with its code, a payload that does not fit the command's layout becomes code 3
  (illegal value), and any other exception becomes code 4 (device failure) and is logged. An
  unknown command is code 1, as the protocol says.
* A broadcast (address 0) runs the handler but is never answered: on a shared bus every slave
  would answer at once.
* Error-reply frames (``cmd | 0x80``) are never requests, so a slave ignores them; so it does not
  answer another slave's error reply it overhears on RS-485.
* Shaped like the master: ``receive_data(data, now)`` returns the bytes to send, and
  ``next_deadline()``/``tick(now)`` give up a partial frame after ``idle_flush`` seconds of
  silence (the inter-frame gap), so a stray start byte cannot stall the next request and no
  adapter re-writes that rule.
* In the tagged format every reply, error replies included, carries the request's tag.

:class:`SlaveGroup` puts several slaves behind one stream of bytes (one RS-485 bus, one port).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .codec import encode
from .commands import MAX_READ_COUNT, READ_REGS, STANDARD, CommandRegistry, ErrorCode
from .errors import DeviceFault, FrameValueError, PayloadError
from .format import DEFAULT_FORMAT, FrameFormat
from .frame import BROADCAST, ERROR_FLAG, Frame, TaggedFrame
from .stream import IdleFlush, StreamDecoder

__all__ = [
    "DEFAULT_IDLE_FLUSH",
    "Handler",
    "Request",
    "Slave",
    "SlaveGroup",
    "SlaveStats",
    "error_reply",
]

DEFAULT_IDLE_FLUSH = 0.005  # seconds of silence that end a partial frame (floor for pty jitter)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """What a handler sees: the frame, its decoded fields (None for a command the registry does
    not know) and whether it was broadcast (the handler's return value is then not sent)."""

    frame: Frame
    fields: dict[str, Any] | None
    is_broadcast: bool


Handler = Callable[[Request], bytes | Mapping[str, Any] | None]


@dataclass
class SlaveStats:
    requests: int = 0  # frames addressed to this slave (or broadcast) and handled
    replies: int = 0  # normal replies produced
    error_replies: int = 0
    broadcasts: int = 0
    ignored: int = 0  # frames for other addresses, and error frames
    handler_failures: int = 0  # handlers that raised something other than DeviceFault


def _read_regs_request(data: bytes) -> dict[str, Any]:
    if len(data) != 3 or not 1 <= data[2] <= MAX_READ_COUNT:
        raise PayloadError(f"bad read_regs request payload {data.hex()}")
    return {"start": data[0] | data[1] << 8, "count": data[2]}


_READ_REGS_FIELDS = frozenset({"count", "values"})


def _read_regs_response(fields: Mapping[str, Any]) -> bytes:
    # The construct layout's refusal of an unknown field (commands._build), in its words. Unlike
    # construct it packs a bool value as 0/1: checking each value's type would make a 120-register
    # reply 40 % dearer in CPU (the whole request), for a value no handler should return.
    if not fields.keys() <= _READ_REGS_FIELDS:
        unknown = sorted(set(fields) - _READ_REGS_FIELDS)
        raise FrameValueError(
            f"read_regs response has no field(s) {unknown}; it has {sorted(_READ_REGS_FIELDS)}"
        )
    values = fields["values"]
    try:
        return struct.pack(f"<B{len(values)}H", len(values), *values)
    except struct.error as exc:
        raise FrameValueError(f"cannot build read_regs response: {exc}") from exc


# Hand-written codecs for the hottest standard command, used instead of construct (about 10x
# faster), keyed by the layout object they replace; tests check that they agree with it.
_FAST: dict[int, tuple[Callable[[bytes], dict[str, Any]], Callable[[Mapping[str, Any]], bytes]]] = {
    id(READ_REGS.request): (_read_regs_request, _read_regs_response),
}


def error_reply(addr: int, cmd: int, code: int) -> Frame:
    """The error reply for ``cmd``: the command with the top bit set and one byte, the code."""
    return Frame(addr, (cmd | ERROR_FLAG) & 0xFF, bytes([code]))


class _Responder:
    """Bytes and time in, reply bytes out: the part :class:`Slave` and :class:`SlaveGroup`
    share (what a port adapter drives)."""

    def __init__(self, fmt: FrameFormat, idle_flush: float) -> None:
        self.fmt = fmt
        self._line = IdleFlush(StreamDecoder(fmt), idle_flush)

    @property
    def decoder(self) -> StreamDecoder:
        return self._line.decoder

    @property
    def idle_flush(self) -> float:
        return self._line.idle_flush

    def receive_data(self, data: bytes, now: float) -> bytes:
        """Feed bytes from the line; return the encoded replies to send back."""
        return self._encode(self._replies(self._line.feed(data, now)))

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next run; None when nothing is timed."""
        return self._line.next_deadline()

    def tick(self, now: float) -> bytes:
        """Let time pass: a partial frame the line left idle is given up."""
        return self._encode(self._replies(self._line.tick(now)))

    def idle(self) -> bytes:
        """The line went quiet (an inter-frame gap), whatever the clock says: flush now."""
        return self._encode(self._replies(self.decoder.flush()))

    def _replies(self, frames: Iterable[Frame]) -> list[Frame]:
        raise NotImplementedError

    def _encode(self, replies: list[Frame]) -> bytes:
        if not replies:
            return b""
        fmt = self.fmt
        return b"".join(encode(r.addr, r.cmd, r.data, fmt, tag=r.tag) for r in replies)


class Slave(_Responder):
    """One device address and its command handlers."""

    def __init__(
        self,
        address: int,
        *,
        registry: CommandRegistry = STANDARD,
        fmt: FrameFormat = DEFAULT_FORMAT,
        idle_flush: float = DEFAULT_IDLE_FLUSH,
    ) -> None:
        if not 1 <= address <= 0xFF:
            raise FrameValueError(f"slave address {address} is not 1..255 (0 is broadcast)")
        super().__init__(fmt, idle_flush)
        self.address = address
        self.registry = registry
        self.stats = SlaveStats()
        self._handlers: dict[int, Handler] = {}

    # -- handler registry -----------------------------------------------------------------

    def add_handler(self, cmd: int | str, handler: Handler) -> None:
        """Serve ``cmd`` (a code, or a name the registry knows) with ``handler``; replaces any."""
        code = self.registry.resolve_code(cmd)
        if code & ERROR_FLAG:
            raise FrameValueError(f"command 0x{code:02x} has the error flag set")
        self._handlers[code] = handler

    def handler(self, cmd: int | str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add_handler`."""

        def register(func: Handler) -> Handler:
            self.add_handler(cmd, func)
            return func

        return register

    def handles(self, cmd: int) -> bool:
        return cmd in self._handlers

    # -- frames ---------------------------------------------------------------------------

    def accepts(self, frame: Frame) -> bool:
        """Is ``frame`` a request for this slave (its address or broadcast, not an error frame)?"""
        return (frame.addr == self.address or frame.addr == BROADCAST) and not frame.is_error

    def handle(self, frame: Frame) -> Frame | None:
        """The reply to ``frame``; None when it is not for this slave or was broadcast."""
        if not self.accepts(frame):
            self.stats.ignored += 1
            return None
        broadcast = frame.addr == BROADCAST
        self.stats.requests += 1
        if broadcast:
            self.stats.broadcasts += 1
        reply = self._dispatch(frame, broadcast)
        if broadcast:
            return None
        if frame.tag is not None:  # the tagged format: every reply echoes the request's tag
            reply = TaggedFrame(reply.addr, reply.cmd, reply.data, frame.tag)
        if reply.is_error:
            self.stats.error_replies += 1
        else:
            self.stats.replies += 1
        return reply

    def _dispatch(self, frame: Frame, broadcast: bool) -> Frame:
        handler = self._handlers.get(frame.cmd)
        if handler is None:
            return error_reply(self.address, frame.cmd, ErrorCode.ILLEGAL_COMMAND)
        command = self.registry.find(frame.cmd)
        fast = _FAST.get(id(command.request)) if command is not None else None
        try:
            if fast is not None:
                fields: dict[str, Any] | None = fast[0](frame.data)
            else:
                fields = command.decode_request(frame.data) if command is not None else None
        except PayloadError as exc:
            log.debug("slave %d: %s", self.address, exc)
            return error_reply(self.address, frame.cmd, ErrorCode.ILLEGAL_VALUE)
        try:
            result = handler(Request(frame, fields, broadcast))
            if result is None:
                data = b""
            elif isinstance(result, (bytes, bytearray, memoryview)):
                data = bytes(result)
            elif command is None:
                raise FrameValueError(
                    f"handler for unknown command 0x{frame.cmd:02x} returned fields, not bytes"
                )
            elif fast is not None:
                data = fast[1](result)
            else:
                data = command.encode_response(result)
            if len(data) > self.fmt.max_payload:
                raise FrameValueError(
                    f"reply of {len(data)} bytes exceeds max_payload {self.fmt.max_payload}"
                )
        except DeviceFault as exc:
            return error_reply(self.address, frame.cmd, exc.code)
        except Exception:
            self.stats.handler_failures += 1
            log.exception("slave %d: handler for cmd 0x%02x failed", self.address, frame.cmd)
            return error_reply(self.address, frame.cmd, ErrorCode.DEVICE_FAILURE)
        return Frame(self.address, frame.cmd, data)

    def _replies(self, frames: Iterable[Frame]) -> list[Frame]:
        out = []
        for frame in frames:
            reply = self.handle(frame)
            if reply is not None:
                out.append(reply)
        return out


class SlaveGroup(_Responder):
    """Several slaves on one line: every frame is offered to each; replies go out in order.

    Addresses must be distinct (two devices answering at once is a bus collision).
    """

    def __init__(
        self,
        slaves: list[Slave],
        fmt: FrameFormat = DEFAULT_FORMAT,
        *,
        idle_flush: float = DEFAULT_IDLE_FLUSH,
    ) -> None:
        seen: set[int] = set()
        for slave in slaves:
            if slave.address in seen:
                raise FrameValueError(f"two slaves with address {slave.address}")
            seen.add(slave.address)
        super().__init__(fmt, idle_flush)
        self.slaves = slaves

    def handle(self, frame: Frame) -> list[Frame]:
        replies = []
        for slave in self.slaves:
            reply = slave.handle(frame)
            if reply is not None:
                replies.append(reply)
        return replies

    def _replies(self, frames: Iterable[Frame]) -> list[Frame]:
        return [reply for frame in frames for reply in self.handle(frame)]
