"""framebridge frames: the frame codec and the master/slave protocol, pure logic.

Nothing here imports asyncio, serial or sockets except :mod:`frames.io`, the thin adapters.
"""

from .codec import decode, encode, encode_frame
from .commands import STANDARD, Command, CommandRegistry, ErrorCode
from .errors import (
    BadEnd,
    BadLength,
    BadStart,
    CrcMismatch,
    DeviceError,
    DeviceFault,
    FrameError,
    FramesError,
    FrameValueError,
    LinkDown,
    MasterClosed,
    MasterError,
    PayloadError,
    QueueFull,
    Timeout,
    TrailingBytes,
    Truncated,
    UnknownCommand,
)
from .format import DEFAULT_FORMAT, FrameFormat
from .frame import BROADCAST, MAX_SLAVE_ADDR, Frame
from .slave import Handler, Request, Slave, SlaveGroup, SlaveStats
from .stream import DecoderStats, StreamDecoder

__all__ = [
    "BROADCAST",
    "DEFAULT_FORMAT",
    "MAX_SLAVE_ADDR",
    "STANDARD",
    "BadEnd",
    "BadLength",
    "BadStart",
    "Command",
    "CommandRegistry",
    "CrcMismatch",
    "DecoderStats",
    "DeviceError",
    "DeviceFault",
    "ErrorCode",
    "Frame",
    "FrameError",
    "FrameFormat",
    "FrameValueError",
    "FramesError",
    "Handler",
    "LinkDown",
    "MasterClosed",
    "MasterError",
    "PayloadError",
    "QueueFull",
    "Request",
    "Slave",
    "SlaveGroup",
    "SlaveStats",
    "StreamDecoder",
    "Timeout",
    "TrailingBytes",
    "Truncated",
    "UnknownCommand",
    "decode",
    "encode",
    "encode_frame",
]
