"""Admission: the one place that decides, *after* hello, what a client may take. Pure.

The connection core (:mod:`bridge.connection`) asks the policy three questions, always with
the authenticated :class:`~bridge.acl.Principal` in hand: may this client stay connected, may
it take these subscriptions, may it send this request. Today's answers are the node-wide
client limit and the token's read-only flag (:class:`SimplePolicy`); tenants' quotas are
:class:`bridge.quota.TenantPolicy`, which counts per tenant.

Connections that have not said hello yet are not the policy's business: they are counted apart
(``limits.max_pending``, ``limits.hello_timeout_s``) so that they can never crowd out clients
that authenticate (issue 10, break 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .acl import Principal
from .contract import CLOSE_NODE_FULL, Request, Topic

__all__ = ["Policy", "Refusal", "SimplePolicy"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why something was not admitted. ``close`` set: the connection ends with that code;
    otherwise the client gets an ``error`` (``code`` is a contract error or reply code)."""

    code: str
    message: str
    close: int | None = None


class Policy(Protocol):
    def admit_connection(self, principal: Principal, clients: int) -> Refusal | None:
        """``clients``: authenticated clients already on this node (this one not counted)."""

    def admit_subscription(
        self, principal: Principal, topics: Sequence[Topic], held: int
    ) -> Refusal | None:
        """``held``: topics this session already holds (before this subscribe)."""

    def admit_request(self, principal: Principal, request: Request) -> Refusal | None:
        """The bus exists and the principal may see it; may it send this?"""

    def release(self, principal: Principal) -> None:
        """An admitted connection ended."""

    def request_done(self, principal: Principal, request: Request) -> None:
        """An admitted request has its answer (or was cancelled): it is no longer in flight."""


class SimplePolicy:
    """One node, no tenants: at most ``max_clients`` authenticated clients; read-only tokens
    send no requests."""

    def __init__(self, max_clients: int) -> None:
        self.max_clients = max_clients

    def admit_connection(self, principal: Principal, clients: int) -> Refusal | None:
        if clients >= self.max_clients:
            return Refusal("full", "node full", CLOSE_NODE_FULL)
        return None

    def admit_subscription(
        self, principal: Principal, topics: Sequence[Topic], held: int
    ) -> Refusal | None:
        return None

    def admit_request(self, principal: Principal, request: Request) -> Refusal | None:
        if not principal.may_request(request.bus, request.addr, request.cmd):
            return Refusal("forbidden", "this token may not send requests here")
        return None

    def release(self, principal: Principal) -> None:
        return None

    def request_done(self, principal: Principal, request: Request) -> None:
        return None
