"""One client connection's logic, without I/O: messages and time in, actions out. Pure.

The websockets adapter (:mod:`bridge.server`) feeds each client message to
:meth:`Connection.receive` with the time, and performs the actions it gets back: :class:`Send`
an answer, :class:`Subscribe`/:class:`Unsubscribe` at the hub, :class:`Submit` a request to a
bus owner, :class:`Close` with a code. The hello stage, dispatch, access checks, resume
bookkeeping and the per-connection message rate all live here, so they are tested with a fake
clock and no sockets (``tests/bridge/test_connection.py``), as ``websockets.protocol`` is. What a
client is shown of the node (the welcome, the state answer, its topics narrowed to its access)
is built by :mod:`bridge.views`.

Admission questions go to one :class:`~bridge.policy.Policy`, asked only after hello, when the
client's :class:`~bridge.acl.Principal` is known.

Bad input is a :class:`Send` of an ``error`` and the connection goes on; a bug of the bridge on
one message is logged once with its traceback and answered ``internal_error``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from . import contract as c
from . import messages as m
from .acl import Credentials, Principal, StaticTokens, TokenRule
from .config import Limits
from .errors import ContractError
from .guard import normalize_origin
from .policy import Policy
from .session import Session
from .views import BusView, Node, state_for, visible_topics, welcome, with_id

__all__ = [
    "Action",
    "BusView",
    "Close",
    "Connection",
    "Node",
    "RateLimit",
    "Send",
    "Submit",
    "Subscribe",
    "Unsubscribe",
    "state_for",
]

log = logging.getLogger("bridge.connection")


@dataclass(frozen=True, slots=True)
class Send:
    """Queue this answer. ``outcome`` (bus label, outcome) when it settles a request."""

    message: m.ServerMessage
    outcome: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Ask the hub; then queue :meth:`Connection.subscribed`'s answer and the replay."""

    topics: tuple[c.Topic, ...]
    since: Mapping[str, c.Position]
    hidden: tuple[str, ...] = ()  # buses named in ``since`` that the client may not see
    id: Any = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    topics: tuple[c.Topic, ...]
    id: Any = None


@dataclass(frozen=True, slots=True)
class Submit:
    """Give the request to its bus owner; answer with :meth:`Connection.reply` when done."""

    request: c.Request


@dataclass(frozen=True, slots=True)
class Close:
    """End the connection. ``reason`` is the close reason; ``label`` the metrics reason."""

    code: int
    reason: str
    label: str = ""


Action = Send | Subscribe | Unsubscribe | Submit | Close


class RateLimit:
    """A token bucket over every message of one connection.

    When it is empty the adapter reads nothing more until a token is back (:meth:`delay`): the
    client's messages wait in its own socket buffers (TCP back-pressure), so a flood costs the
    bridge no CPU. A client whose every read had to wait for ``flood_close_s`` is flooding on
    purpose: :meth:`flooding` says close it (1008). A burst, however large, only slows down.
    """

    __slots__ = ("at", "burst", "flood_close_s", "level", "rate", "throttled_since")

    def __init__(self, rate: float, burst: float, flood_close_s: float, now: float) -> None:
        self.rate = rate  # tokens per second
        self.burst = burst  # bucket size
        self.flood_close_s = flood_close_s
        self.level = burst
        self.at = now
        self.throttled_since: float | None = None

    def _refill(self, now: float) -> None:
        if now > self.at:
            self.level = min(self.burst, self.level + (now - self.at) * self.rate)
            self.at = now

    def delay(self, now: float) -> float:
        """Seconds to wait before reading the next message (0: read now)."""
        self._refill(now)
        if self.level >= 1.0:
            self.throttled_since = None
            return 0.0
        if self.throttled_since is None:
            self.throttled_since = now
        return (1.0 - self.level) / self.rate

    def take(self, now: float, cost: float = 1.0) -> None:
        self._refill(now)
        self.level -= cost

    def flooding(self, now: float) -> bool:
        since = self.throttled_since
        return since is not None and now - since >= self.flood_close_s


class Connection:
    """The logic of one client connection (see the module docstring)."""

    # one per client, 10,000 clients a node: no per-instance dict
    __slots__ = (
        "auth",
        "byte_rate",
        "certified",
        "closed",
        "errors",
        "expires",
        "hello_deadline",
        "limits",
        "node",
        "origin",
        "policy",
        "rate",
        "session",
    )

    def __init__(
        self,
        session: Session,
        node: Node,
        policy: Policy,
        tokens: Collection[str | TokenRule] | Credentials,
        limits: Limits,
        now: float,
        *,
        origin: str | None = None,
        certified: Principal | None = None,
    ) -> None:
        self.session = session
        self.node = node
        self.policy = policy
        self.auth: Credentials = tokens if isinstance(tokens, Credentials) else StaticTokens(tokens)
        self.limits = limits
        self.origin = origin  # the handshake's Origin header (browsers), for a tenant's origins
        self.certified = certified  # the tenant a verified client certificate names
        self.hello_deadline: float | None = now + limits.hello_timeout_s
        self.expires: float | None = None  # the credential's end (a JWT's exp)
        self.closed = False
        self.rate = RateLimit(limits.message_rate, limits.message_burst, limits.flood_close_s, now)
        self.byte_rate: RateLimit | None = None  # the tier's inbound bytes per second
        self.errors: RateLimit | None = None  # the tier's malformed messages per minute

    @property
    def welcomed(self) -> bool:
        return self.session.welcomed

    # -- time ----------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do (hello deadline, credential expiry), or None."""
        if self.closed:
            return None
        return self.hello_deadline if self.hello_deadline is not None else self.expires

    def tick(self, now: float) -> list[Action]:
        if self.closed:
            return []
        if self.hello_deadline is not None and now >= self.hello_deadline:
            return self._close(c.CLOSE_HELLO_TIMEOUT, "hello timeout", "hello_timeout")
        if self.expires is not None and now >= self.expires:
            return self._close(c.CLOSE_TOKEN_EXPIRED, "token expired", "token_expired")
        return []

    def read_delay(self, now: float) -> float:
        """Seconds before the adapter may read the next message (the rate limits)."""
        delay = self.rate.delay(now)
        if self.byte_rate is not None:
            delay = max(delay, self.byte_rate.delay(now))
        return delay

    # -- messages ------------------------------------------------------------------------------

    def receive(self, raw: str | bytes, now: float) -> list[Action]:
        """One client message (as received) → what to do."""
        if self.closed:
            return []
        expired = self.tick(now)
        if expired:
            return expired
        if self.rate.flooding(now) or (self.byte_rate and self.byte_rate.flooding(now)):
            return self._close(c.CLOSE_POLICY, "message rate", "flood")
        self.rate.take(now)
        if self.byte_rate is not None:
            self.byte_rate.take(now, len(raw))
        msg: c.ClientMessage | None = None
        try:
            msg = c.parse_client_message(raw, max_topics=self.limits.max_topics)
            if not self.session.welcomed:
                return self._hello(msg, now)
            if isinstance(msg, c.Refresh):
                return self._refresh(msg, now)
            return self._dispatch(msg)
        except ContractError as exc:
            errors = self.errors
            if errors is not None:
                errors.take(now)
                if errors.delay(now) > 0:  # over the tier's malformed messages per minute
                    return self._close(c.CLOSE_POLICY, "too many bad messages", "bad_messages")
            return [Send(m.error_message(exc.code, exc.message, exc.msg_id))]
        except Exception:  # a bridge bug: this message fails, the connection and the rest go on
            log.exception("event=internal_error session=%s", self.session.id)
            msg_id = None if msg is None else msg.id
            text = "the bridge failed on this message"
            return [Send(m.error_message(c.INTERNAL_ERROR, text, msg_id))]

    def _close(self, code: int, reason: str, label: str) -> list[Action]:
        self.closed = True
        return [Close(code, reason, label)]

    def _hello(self, msg: c.ClientMessage, now: float) -> list[Action]:
        if not isinstance(msg, c.Hello):
            raise ContractError(c.HELLO_REQUIRED, "send hello first", msg.id)
        principal: Principal | None
        if msg.token is None and self.certified is not None:
            principal = self.certified
        elif msg.token is None:
            if self.auth.required:
                raise ContractError(c.MISSING_FIELD, "'token' is required", msg.id)
            principal = self.auth.authenticate("", now)
        else:
            principal = self.auth.authenticate(msg.token, now)
        if principal is None:
            return self._close(c.CLOSE_UNAUTHORIZED, "unauthorized", "unauthorized")
        if not self._origin_ok(principal):
            return self._close(c.CLOSE_UNAUTHORIZED, "origin not allowed", "tenant_origin")
        refusal = self.policy.admit_connection(principal, self.node.clients())
        if refusal is not None:
            return self._close(refusal.close or c.CLOSE_POLICY, refusal.message, refusal.code)
        self.session.principal = principal
        self.session.welcomed = True
        self.hello_deadline = None
        self.expires = principal.expires
        self._tier_limits(principal, now)
        heartbeat_s = self.limits.heartbeat_s
        return [Send(welcome(self.node, principal, self.session.id, heartbeat_s, msg.id))]

    def _origin_ok(self, principal: Principal) -> bool:
        """A tenant that names its own browser origins gets only those (a client without
        ``Origin``, which is not a browser, is not concerned)."""
        if not principal.origins or self.origin is None:
            return True
        return "*" in principal.origins or normalize_origin(self.origin) in principal.origins

    def _tier_limits(self, principal: Principal, now: float) -> None:
        """The tier's inbound rates replace the node-wide one for this connection."""
        tier, lim = principal.tier, self.limits
        if tier.messages_per_s is not None:
            rate = tier.messages_per_s
            self.rate = RateLimit(rate, max(2 * rate, 1.0), lim.flood_close_s, now)
        if tier.bytes_per_s is not None:
            rate = tier.bytes_per_s
            burst = max(2 * rate, float(lim.max_message_bytes))
            self.byte_rate = RateLimit(rate, burst, lim.flood_close_s, now)
        if tier.bad_messages is not None:
            n = float(tier.bad_messages)
            self.errors = RateLimit(n / 60.0, n, lim.flood_close_s, now)

    def _refresh(self, msg: c.Refresh, now: float) -> list[Action]:
        """A new credential of the same tenant takes over (its scopes, its expiry)."""
        old: Principal = self.session.principal
        new = self.auth.authenticate(msg.token, now)
        if new is None or new.tenant != old.tenant or not old.tenant:
            raise ContractError(c.UNAUTHORIZED, "this token is not accepted here", msg.id)
        self.session.principal = new
        self.expires = new.expires
        out: m.Refreshed = {"type": "refreshed", "expires": new.expires}
        return [Send(out if msg.id is None else {"type": "refreshed", "id": msg.id, **out})]

    def _dispatch(self, msg: c.ClientMessage) -> list[Action]:
        principal: Principal = self.session.principal
        if isinstance(msg, c.Hello):
            raise ContractError(c.ALREADY_HELLO, "hello was already accepted", msg.id)
        if isinstance(msg, c.Ping):
            return [Send(m.pong(msg.id))]
        if isinstance(msg, c.Subscribe):
            return self._subscribe(principal, msg)
        if isinstance(msg, c.Unsubscribe):
            topics = visible_topics(principal, msg.topics, self.node.buses)
            return [Unsubscribe(tuple(topics), msg.id)]
        if isinstance(msg, c.StateQuery):
            state: m.StateAnswer = {"type": "state", "buses": state_for(self.node, principal)}
            return [Send(with_id(state, msg.id))]
        return self._request(principal, msg)

    def _subscribe(self, principal: Principal, msg: c.Subscribe) -> list[Action]:
        topics = visible_topics(principal, msg.topics, self.node.buses)
        buses = self.node.buses
        for topic in topics:
            # a bus the token may not see is answered like one that does not exist: a limited
            # token learns nothing of the others
            if topic.bus is not None and not (
                topic.bus in buses and principal.may_see(topic.bus, None)
            ):
                raise ContractError(c.BAD_VALUE, f"no bus named {topic.bus!r}", msg.id)
            if topic.bus is not None and not principal.may_see(topic.bus, topic.addr):
                # decided by the patterns alone: the same answer whether the device exists
                text = f"topic {topic} is outside this token's read access"
                raise ContractError(c.BAD_VALUE, text, msg.id)
        refusal = self.policy.admit_subscription(principal, topics, len(self.session.topics))
        if refusal is not None:
            raise ContractError(refusal.code, refusal.message, msg.id)
        since = {b: p for b, p in msg.since.items() if principal.may_see(b, None)}
        hidden = tuple(b for b in msg.since if b not in since)
        return [Subscribe(tuple(topics), since, hidden, msg.id)]

    def subscribed(
        self, action: Subscribe, topics: list[str], recovered: Mapping[str, bool]
    ) -> m.Subscribed:
        """The answer to ``action`` once the hub took it (queue the replay right after it)."""
        shown = dict(recovered)
        for bus in action.hidden:
            shown[bus] = False  # as for an unknown bus
        out: m.Subscribed = {"type": "subscribed", "topics": topics, "recovered": shown}
        return with_id(out, action.id)

    def unsubscribed(self, action: Unsubscribe, topics: list[str]) -> m.Unsubscribed:
        out: m.Unsubscribed = {"type": "unsubscribed", "topics": topics}
        return with_id(out, action.id)

    def _request(self, principal: Principal, msg: c.ClientMessage) -> list[Action]:
        assert isinstance(msg, c.Request)
        if msg.bus not in self.node.buses or not principal.may_see(msg.bus, None):
            # not labelled with the client's bus name (labels must stay few); a bus the token
            # may not see is answered like one that does not exist
            text = f"no bus named {msg.bus!r}"
            return [Send(m.reply_error("bad_request", text, msg.id), ("", "bad_request"))]
        if self.node.draining:
            reply = m.reply_error("busy", "bridge is shutting down", msg.id)
            return [Send(reply, (msg.bus, "busy"))]
        refusal = self.policy.admit_request(principal, msg)
        if refusal is not None:  # never queued: answered in this turn
            reply = m.reply_error(refusal.code, refusal.message, msg.id)
            return [Send(reply, (msg.bus, refusal.code))]
        return [Submit(msg)]

    def reply(self, request: c.Request, result: Mapping[str, Any] | None) -> Send:
        """The answer to a submitted request: ``result`` is the bus owner's reply fields, or
        None when the request was cancelled (the bridge is stopping)."""
        self.policy.request_done(self.session.principal, request)
        if result is None:
            text = "request cancelled (bridge stopping)"
            return Send(m.reply_error("bus_down", text, request.id), (request.bus, "bus_down"))
        reply: Any = {"type": "reply"}
        if request.id is not None:
            reply["id"] = request.id
        reply.update(result)  # the bus owner's fields, "ok" first (the wire order of v1)
        error = reply.get("error")
        outcome = "ok" if reply.get("ok") else str(error["code"] if error else "error")
        return Send(reply, (request.bus, outcome))
