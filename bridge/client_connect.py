"""How :class:`bridge.client.BridgeClient` opens a connection, and gets a lost one back.

:func:`open_connection` is one attempt: the WebSocket handshake and the hello, both bounded by
``open_timeout_s``; a close during the hello becomes the typed end its code stands for
(:func:`~bridge.client_policy.closed_error`), anything else aborts the socket (a failed hello is
worth no close handshake).

:func:`reconnect` is one decision, made again after every failed attempt: sleep the next
full-jitter delay (:class:`frames.backoff.Backoff`; a "slow" close or HTTP refusal starts it
higher), try again, and read the failure by the same close-code table the browser uses
(:mod:`bridge.client_policy`): a refusal that no retry changes (unauthorized, a forbidden Origin)
ends the client, anything else (a lost TCP connection, a timeout, a node that is full) is retried
until ``max_reconnects`` attempts in a row have failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from frames.backoff import Backoff

from .client_policy import (
    SLOW_BACKOFF_STEPS,
    CloseRule,
    close_rule,
    closed_error,
    http_rule,
    parse_messages,
)
from .errors import ClientClosed, ClientError

__all__ = ["HISTORY_KEPT", "open_connection", "reconnect", "remember"]

log = logging.getLogger("bridge.client")

HISTORY_KEPT = 64  # the newest entries of close_codes, delays, resumes and reloads


def remember(log_list: list[Any], item: Any) -> None:
    """Append, keeping only the newest HISTORY_KEPT: a client may live for months."""
    log_list.append(item)
    del log_list[:-HISTORY_KEPT]


async def open_connection(
    url: str,
    token: str,
    *,
    open_timeout_s: float,
    connect_kwargs: dict[str, Any],
    close_codes: list[int | None],
) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect and say hello; the connection and its ``welcome``. A close during the hello is
    recorded in ``close_codes`` and raised as its typed end."""
    ws = await asyncio.wait_for(
        connect(url, open_timeout=open_timeout_s, **connect_kwargs), open_timeout_s
    )
    try:
        welcome = await asyncio.wait_for(_hello(ws, token), open_timeout_s)
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else ws.close_code
        remember(close_codes, code)
        raise closed_error(code, exc.rcvd.reason if exc.rcvd is not None else "") from None
    except BaseException:
        ws.transport.abort()  # a failed hello: nothing worth a close handshake
        raise
    return ws, welcome


async def _hello(ws: ClientConnection, token: str) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "hello", "token": token}))
    while True:
        for msg in parse_messages(await ws.recv()):
            if msg.get("type") == "welcome":
                return msg
            if msg.get("type") == "error":
                raise ClientError(f"hello refused: {msg}")


async def reconnect(
    attempt: Callable[[], Awaitable[None]],
    rule: CloseRule,
    code: int | None,
    *,
    backoff: Backoff,
    max_reconnects: int,
    delays: list[float],
    url: str,
    on_failure: Callable[[], None],
) -> ClientClosed | None:
    """Call ``attempt`` (open, hello, resume) after each backoff delay until it works (None)
    or the client must end (the reason). ``rule`` is the lost connection's close rule (``code``);
    ``on_failure`` runs after an attempt that failed without a refusal."""
    failures = 0
    while True:
        failures += 1
        if failures > max_reconnects:
            return ClientClosed(f"gave up after {failures - 1} reconnects", code)
        if rule.slow:
            backoff.attempts = max(backoff.attempts, SLOW_BACKOFF_STEPS)
        delay = backoff.next_delay()
        remember(delays, delay)
        await asyncio.sleep(delay)
        try:
            await attempt()
            return None
        except ClientClosed as exc:
            log.info("event=reconnect_refused url=%s code=%s", url, exc.code)
            rule = close_rule(exc.code)
            if not rule.retry:
                return exc
        except InvalidStatus as exc:
            status = exc.response.status_code
            log.info("event=reconnect_refused url=%s http=%s", url, status)
            rule = http_rule(status)
            if not rule.retry:
                return ClientClosed(f"the bridge refused the upgrade: HTTP {status}")
        except (
            OSError,
            asyncio.TimeoutError,
            InvalidHandshake,
            ConnectionClosed,
            ClientError,
        ) as exc:
            log.info("event=reconnect_failed url=%s error=%r", url, exc)
            on_failure()
            rule = close_rule(1006)
