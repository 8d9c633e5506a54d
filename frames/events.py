"""What a master reports: traffic on its bus, and the outcome of its transactions.

Pure value types. A master (sync or async) calls its ``on_traffic`` callback with the traffic
events, so a caller sees every frame on the wire — requests, replies, late or unsolicited
frames — plus CRC errors and link state, without subclassing anything. ``MasterCore.events()``
also returns :class:`ReplyReceived` / :class:`RequestFailed`, which the front ends turn into
results and exceptions for their callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import MasterError
from .frame import Frame

__all__ = [
    "CrcErrorSeen",
    "FrameReceived",
    "FrameSent",
    "LinkStateChanged",
    "MasterEvent",
    "MasterStats",
    "ReplyReceived",
    "RequestFailed",
    "TrafficEvent",
]


@dataclass(frozen=True, slots=True)
class FrameSent:
    ts: float  # wall-clock time (time.time()) the frame was written
    frame: Frame


@dataclass(frozen=True, slots=True)
class FrameReceived:
    ts: float
    frame: Frame
    # "reply": the awaited answer; "late": answers an earlier, timed-out request;
    # "unexpected": wrong address/command or unsolicited; "echo": RS-485 local echo discarded.
    kind: Literal["reply", "late", "unexpected", "echo"] = "reply"


@dataclass(frozen=True, slots=True)
class CrcErrorSeen:
    ts: float
    count: int = 1  # CRC failures since the previous report


@dataclass(frozen=True, slots=True)
class LinkStateChanged:
    ts: float
    up: bool
    reason: str = ""


TrafficEvent = FrameSent | FrameReceived | CrcErrorSeen | LinkStateChanged


# -- what a master reports about its own transactions (frames.master.MasterCore) --


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """The transaction ``token`` got its reply. For a broadcast, ``frame`` is ``Frame(0, cmd)``
    once the turnaround delay has passed."""

    token: int
    request: Frame
    frame: Frame
    rtt: float  # seconds from sending the last attempt to the reply
    attempts: int


@dataclass(frozen=True, slots=True)
class RequestFailed:
    token: int
    request: Frame
    error: MasterError
    attempts: int


MasterEvent = ReplyReceived | RequestFailed | TrafficEvent


@dataclass
class MasterStats:
    requests: int = 0
    replies: int = 0
    broadcasts: int = 0
    timeouts: int = 0
    retries: int = 0
    device_errors: int = 0
    crc_errors: int = 0
    late: int = 0
    unexpected: int = 0
    echoes: int = 0
    cancelled: int = 0
    link_failures: int = 0
