"""What one client may see of the node it is connected to, as server messages. Pure.

Every answer built from the node's own state goes through a :class:`~bridge.acl.Principal`
here: the ``welcome`` (the buses it may see, their positions, its read/write access), the
``state`` answer and ``/api/state`` (:func:`state_for`), and the topics of a subscription
narrowed to what it may read (:func:`visible_topics`). The connection core
(:mod:`bridge.connection`) decides *when* to answer; this module decides *what* a principal is
shown, so a limited token learns nothing of the buses and devices outside its access, in
every answer alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar, cast

from . import contract as c
from . import messages as m
from .acl import Principal

__all__ = ["BusView", "Node", "state_for", "visible_topics", "welcome", "with_id"]


class BusView(Protocol):
    """What the core reads of a bus owner (:class:`bridge.server.BusPort` is one)."""

    down_reason: str

    @property
    def up(self) -> bool: ...
    def snapshot(self) -> dict[str, Any]: ...


class Node(Protocol):
    """What the core reads of the node it runs on (the server implements it)."""

    @property
    def node(self) -> str: ...
    @property
    def draining(self) -> bool: ...
    @property
    def buses(self) -> Mapping[str, BusView]: ...
    def clients(self) -> int: ...
    def position(self, bus: str) -> c.Position: ...


def welcome(
    node: Node, principal: Principal, session_id: str, heartbeat_s: float, msg_id: Any
) -> m.Welcome:
    """The ``welcome``: the session, the buses ``principal`` may see with their positions (and
    owners in cluster mode), and its read/write access."""
    buses: dict[str, m.BusPosition] = {}
    for name in principal.visible(node.buses):
        pos = node.position(name)
        buses[name] = {"epoch": pos.epoch, "seq": pos.seq}
        owner = getattr(node.buses[name], "owner", ...)
        if owner is not ...:  # cluster mode: the node that polls the bus
            buses[name]["owner"] = owner
    out: m.Welcome = {
        "type": "welcome",
        "session": session_id,
        "node": node.node,
        "version": c.VERSION,
        "buses": buses,
        "heartbeat_s": heartbeat_s,
    }
    access = principal.access(node.buses)
    out["access"] = {"read": access["read"], "write": access["write"]}
    return with_id(out, msg_id)


def visible_topics(
    principal: Principal, topics: Sequence[c.Topic], buses: Mapping[str, Any]
) -> list[c.Topic]:
    """For a principal limited to some buses or devices, ``*`` and ``BUS/*`` are what it may
    see of them (``BUS/*`` or ``BUS/ADDR`` each): fan-out and replay then filter by device with
    no cost per message. A topic naming a device, or a bus it may not see, is returned as is
    (the caller checks it, and refuses a hidden one)."""
    if not principal.restricted:
        return list(topics)
    out: list[c.Topic] = []
    for topic in topics:
        if topic.addr is not None or (
            topic.bus is not None and not principal.may_see(topic.bus, None)
        ):
            out.append(topic)
            continue
        for bus, addr in principal.topics(topic.bus, buses):
            narrowed = c.Topic(bus, addr)
            if narrowed not in out:
                out.append(narrowed)
    return out


def state_for(node: Node, principal: Principal) -> dict[str, m.BusState]:
    """What ``principal`` may see of every bus: the ``state`` answer's and ``/api/state``'s
    ``buses``."""
    out: dict[str, m.BusState] = {}
    for name, bus in node.buses.items():
        if not principal.may_see(name, None):
            continue
        pos = node.position(name)
        snap = bus.snapshot()
        snap = {a: d for a, d in snap.items() if principal.may_see(name, int(a))}
        out[name] = {
            "up": bus.up,
            "reason": bus.down_reason,
            "url": str(getattr(bus, "url", "")),  # the bus's port, for the dashboard
            "epoch": pos.epoch,
            "seq": pos.seq,
            "devices": snap,
        }
        owner = getattr(bus, "owner", ...)
        if owner is not ...:  # cluster mode: the node that polls the bus (None: no node)
            out[name]["owner"] = owner
    return out


_M = TypeVar("_M", m.Welcome, m.Subscribed, m.Unsubscribed, m.StateAnswer)


def with_id(message: _M, msg_id: Any) -> _M:
    """``message`` with ``id`` right after ``type``, where contract v1 has always put it."""
    if msg_id is None:
        return message
    return cast(_M, {"type": message["type"], "id": msg_id, **message})
