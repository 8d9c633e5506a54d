"""Every error the ``frames`` package raises, under one root.

Catch :class:`FramesError` to catch them all. The tree::

    FramesError
    ├── FrameError                 the bytes on the wire are not a valid frame (peer's fault)
    │   ├── BadStart               first byte is not the format's start byte
    │   ├── Truncated              fewer bytes than the header or the declared length needs
    │   ├── BadLength              declared payload length above the format's maximum
    │   ├── CrcMismatch            checksum does not match the content
    │   ├── BadEnd                 format has an end byte and it is wrong
    │   ├── TrailingBytes          bytes left after one complete frame
    │   └── PayloadError           payload does not fit the command's declared layout
    ├── FrameValueError            a caller asked to encode something impossible (our fault)
    ├── UnknownCommand             a command name or code is not in the registry
    ├── DeviceMapError             a device map (TOML) cannot be used (names the file and the key)
    ├── DeviceFault                a slave handler's way to answer with an error reply (``code``)
    └── MasterError                a transaction did not produce a good reply
        ├── Timeout                no matching reply within the timeout after all retries
        ├── DeviceError            the device answered with an error reply (``code``)
        ├── LinkDown               the port is gone (adapter unplugged, socket closed)
        ├── MasterClosed           the master was closed while a request was pending
        └── QueueFull              too many requests waiting for the bus (``max_queue``)

``FrameError`` is also a :class:`ValueError` so generic "bad input" handlers catch it.
"""

from __future__ import annotations

__all__ = [
    "BadEnd",
    "BadLength",
    "BadStart",
    "CrcMismatch",
    "DeviceError",
    "DeviceFault",
    "DeviceMapError",
    "FrameError",
    "FrameValueError",
    "FramesError",
    "LinkDown",
    "MasterClosed",
    "MasterError",
    "PayloadError",
    "QueueFull",
    "Timeout",
    "TrailingBytes",
    "Truncated",
    "UnknownCommand",
]


class FramesError(Exception):
    """Root of every error raised by ``frames``."""


class FrameError(FramesError, ValueError):
    """Bytes received are not a valid frame: the peer (or the line) is at fault."""


class BadStart(FrameError):
    pass


class Truncated(FrameError):
    pass


class BadLength(FrameError):
    pass


class CrcMismatch(FrameError):
    def __init__(self, expected: int, received: int) -> None:
        super().__init__(f"CRC mismatch: computed 0x{expected:04x}, frame carries 0x{received:04x}")
        self.expected = expected
        self.received = received


class BadEnd(FrameError):
    pass


class TrailingBytes(FrameError):
    pass


class PayloadError(FrameError):
    """A payload that does not match the command's declared request/response layout."""


class FrameValueError(FramesError, ValueError):
    """The caller asked to build a frame that cannot exist (address or payload out of range)."""


class UnknownCommand(FramesError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its argument; we want a readable message
        return str(self.args[0]) if self.args else "unknown command"


class DeviceMapError(FramesError, ValueError):
    """A device map that cannot be used; the message starts with ``source: key:``."""

    def __init__(self, source: str, key: str, message: str) -> None:
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(where + message)
        self.source = source
        self.key = key
        self.detail = message


class MasterError(FramesError):
    """A master transaction failed."""


class Timeout(MasterError, TimeoutError):
    pass


# Standard device error codes carried in the one data byte of an error reply.
DEVICE_ERROR_NAMES: dict[int, str] = {
    1: "illegal command",
    2: "illegal register",
    3: "illegal value",
    4: "device failure",
    5: "busy",
}


class DeviceError(MasterError):
    """The device answered with an error reply (``cmd | 0x80``)."""

    def __init__(self, code: int, addr: int | None = None, cmd: int | None = None) -> None:
        name = DEVICE_ERROR_NAMES.get(code, "unknown error")
        where = f" from addr {addr} cmd 0x{cmd:02x}" if addr is not None and cmd is not None else ""
        super().__init__(f"device error {code} ({name}){where}")
        self.code = code
        self.name = name
        self.addr = addr
        self.cmd = cmd


class LinkDown(MasterError, ConnectionError):
    pass


class MasterClosed(MasterError):
    pass


class QueueFull(MasterError):
    """More requests are waiting for the bus than the master's ``max_queue`` allows."""


class DeviceFault(FramesError):
    """Raised by a slave handler to answer with an error reply carrying ``code``.

    The slave side's counterpart of :class:`DeviceError`: a handler raises it, the master
    receives ``cmd | 0x80`` with ``code`` and raises :class:`DeviceError`.
    """

    def __init__(self, code: int, message: str = "") -> None:
        if not 0 <= code <= 0xFF:
            raise FrameValueError(f"device error code {code} is not a byte")
        name = DEVICE_ERROR_NAMES.get(code, "unknown error")
        super().__init__(message or f"device fault {code} ({name})")
        self.code = code
