"""A host end for simulator tests: pyserial-asyncio on the bus URL (pty or socket://)."""

from __future__ import annotations

import asyncio
from typing import Any

import serial_asyncio

from frames.codec import encode
from frames.frame import Frame
from frames.stream import StreamDecoder

TIMEOUT = 3.0


class Host:
    """Writes frames and collects every frame that comes back, decoded, in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = StreamDecoder()
        self.frames: list[Frame] = []
        self.chunks: list[bytes] = []

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> Host:
        reader, writer = await asyncio.wait_for(
            serial_asyncio.open_serial_connection(url=url, baudrate=115200, **kwargs), TIMEOUT
        )
        return cls(reader, writer)

    def send(self, addr: int, cmd: int, data: bytes = b"") -> None:
        self.writer.write(encode(addr, cmd, data))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def frame(self, timeout: float = TIMEOUT) -> Frame:
        """The next decoded frame; fails (TimeoutError) if none arrives within ``timeout``."""

        async def next_frame() -> Frame:
            while not self.frames:
                chunk = await self.reader.read(4096)
                if not chunk:
                    raise ConnectionError("port closed")
                self.chunks.append(chunk)
                self.frames.extend(self.decoder.feed(chunk))
            return self.frames.pop(0)

        return await asyncio.wait_for(next_frame(), timeout)

    async def request(self, addr: int, cmd: int, data: bytes = b"") -> Frame:
        self.send(addr, cmd, data)
        return await self.frame()

    async def close(self) -> None:
        self.writer.close()
