"""framebridge frames: the frame codec and the master/slave protocol, pure logic.

Nothing here imports asyncio, serial or sockets except :mod:`frames.io`, the thin adapters.
"""

from .codec import decode, encode, encode_frame
from .commands import STANDARD, Command, CommandRegistry, ErrorCode
from .devicemap import DeviceMap, load_device_map
from .errors import (
    BadEnd,
    BadLength,
    BadStart,
    CrcMismatch,
    DeviceError,
    DeviceFault,
    DeviceMapError,
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
from .frame import BROADCAST, MAX_SLAVE_ADDR, Frame, TaggedFrame
from .register import RegisterDef
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
    "DeviceMap",
    "DeviceMapError",
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
    "RegisterDef",
    "Request",
    "Slave",
    "SlaveGroup",
    "SlaveStats",
    "StreamDecoder",
    "TaggedFrame",
    "Timeout",
    "TrailingBytes",
    "Truncated",
    "UnknownCommand",
    "decode",
    "encode",
    "encode_frame",
    "load_device_map",
]
