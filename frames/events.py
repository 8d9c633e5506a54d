"""Traffic events a master reports about its bus, for monitors, sniffers and the bridge.

Pure value types. A master (sync or async) calls its ``on_traffic`` callback with these, so a
caller sees every frame on the wire — requests, replies, late or unsolicited frames — plus CRC
errors and link state, without subclassing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .frame import Frame

__all__ = ["CrcErrorSeen", "FrameReceived", "FrameSent", "LinkStateChanged", "TrafficEvent"]


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
