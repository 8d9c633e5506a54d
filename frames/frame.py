"""The frame value type."""

from __future__ import annotations

from typing import NamedTuple

ERROR_FLAG = 0x80
BROADCAST = 0
MAX_SLAVE_ADDR = 247  # slaves are 1..247; 248..255 are reserved


def short_hex(data: bytes, limit: int = 16) -> str:
    """Hex of ``data``, cut to ``limit`` bytes with a count, so log lines stay one line."""
    if len(data) <= limit:
        return data.hex()
    return f"{data[:limit].hex()}…(+{len(data) - limit} bytes)"


class Frame(NamedTuple):
    """One decoded frame: address, command and payload.

    A NamedTuple rather than a dataclass: it is immutable and hashable like a frozen dataclass but
    about 4x cheaper to create, which matters at a million frames per second.
    """

    addr: int
    cmd: int
    data: bytes = b""

    @property
    def is_broadcast(self) -> bool:
        return self.addr == BROADCAST

    @property
    def is_error(self) -> bool:
        """An error reply: the command with the top bit set."""
        return bool(self.cmd & ERROR_FLAG)

    @property
    def base_cmd(self) -> int:
        """The command this frame answers (without the error flag)."""
        return self.cmd & ~ERROR_FLAG & 0xFF

    @property
    def error_code(self) -> int | None:
        """The device error code of an error reply, else None."""
        if self.is_error and self.data:
            return self.data[0]
        return None

    def __str__(self) -> str:
        kind = " ERROR" if self.is_error else ""
        return (
            f"Frame(addr={self.addr} cmd=0x{self.cmd:02x}{kind} len={len(self.data)} "
            f"data={short_hex(self.data)})"
        )
