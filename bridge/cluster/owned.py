"""A bus this node polls, as the server sees it (a bus another node owns is a
:class:`.remote.RemoteBus`): the owner, the owner's name and a note for ``/healthz``."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

__all__ = ["OwnedBus", "Owner"]


class Owner(Protocol):
    """What the node needs of a bus owner (:class:`bridge.buses.BusOwner`)."""

    name: str
    down_reason: str

    @property
    def up(self) -> bool: ...
    def submit(self, request: Any, client: str = "") -> asyncio.Future[dict[str, Any]]: ...
    def snapshot(self) -> dict[str, Any]: ...
    async def start(self) -> None: ...
    async def stop(self, grace: float = 5.0) -> None: ...


class OwnedBus:
    """A bus this node polls, as the server sees it: the owner plus the owner's name."""

    def __init__(self, bus: Owner, node: str) -> None:
        self.bus = bus
        self.name = bus.name
        self.owner: str | None = node
        self.note = ""

    @property
    def up(self) -> bool:
        return self.bus.up

    @property
    def down_reason(self) -> str:
        return self.bus.down_reason

    def submit(self, request: Any, client: str = "") -> asyncio.Future[dict[str, Any]]:
        return self.bus.submit(request, client=client)

    def snapshot(self) -> dict[str, Any]:
        return self.bus.snapshot()
