"""The broker: carries each published message to every node's local fan-out. Pure.

In one process it is a direct call, so a publish reaches the sessions before ``publish``
returns. A Redis broker (issue 11) sends the stamped message over pub/sub in the same atomic
step as the store's append, and calls each node's receiver from its reader task; the receiving
fan-out orders by seq and drops duplicates itself (:mod:`bridge.fanout`), so a broker may
deliver late, twice, or out of order without a client noticing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .store import Stamped

__all__ = ["Broker", "MemoryBroker", "Receiver"]

Receiver = Callable[[Stamped], None]


class Broker(Protocol):
    def attach(self, receiver: Receiver) -> None:
        """Deliver every message published from now on, on any node, to ``receiver``."""

    def detach(self, receiver: Receiver) -> None: ...

    def publish(self, message: Stamped) -> None:
        """Carry ``message`` to every attached receiver (this node's included)."""


class MemoryBroker:
    """Every "node" in this process: a list of receivers called in order."""

    def __init__(self) -> None:
        self._receivers: list[Receiver] = []

    def attach(self, receiver: Receiver) -> None:
        self._receivers.append(receiver)

    def detach(self, receiver: Receiver) -> None:
        self._receivers.remove(receiver)

    def publish(self, message: Stamped) -> None:
        for receiver in self._receivers:
            receiver(message)
