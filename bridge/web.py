"""Plain HTTP on the WebSocket port: health, metrics, state and the dashboard's files.

websockets calls :meth:`HttpRoutes.route` (as ``process_request``) before the handshake; any
path but ``/ws`` is answered here and the connection closed. Static files are read from one
directory and a path never escapes it (``..`` and absolute parts are refused), and each file goes
out with the content type its suffix implies.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .metrics import CONTENT_TYPE

__all__ = ["PLACEHOLDER", "HttpRoutes", "http_response"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
WS_PATH = "/ws"
PLACEHOLDER = (
    b"<!doctype html><meta charset=utf-8><title>framebridge</title>"
    b"<h1>framebridge</h1><p>The dashboard is not installed. WebSocket endpoint: <code>/ws</code>, "
    b"health: <a href=/healthz>/healthz</a>, metrics: <a href=/metrics>/metrics</a>, "
    b"state: <a href=/api/state>/api/state</a>.</p>"
)
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".map": "application/json",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}


def http_response(status: int, body: bytes, content_type: str, **headers: str) -> Response:
    h = Headers()
    h["Content-Type"] = content_type
    h["Content-Length"] = str(len(body))
    h["Cache-Control"] = "no-store"
    h["Connection"] = "close"  # websockets answers one request per connection, then closes
    for k, v in headers.items():
        h[k.replace("_", "-")] = v
    return Response(status, HTTPStatus(status).phrase, h, body)


def json_response(status: int, obj: Any) -> Response:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return http_response(status, body, "application/json")


def _static(static_dir: Path, rel: str) -> Response:
    root = static_dir.resolve()
    parts = [p for p in rel.split("/") if p]
    if any(p in ("..", ".") or "\\" in p or "\0" in p for p in parts) or not parts:
        return http_response(404, b"not found\n", "text/plain; charset=utf-8")
    path = root.joinpath(*parts)
    try:
        resolved = path.resolve()
        if root not in resolved.parents or not resolved.is_file():
            return http_response(404, b"not found\n", "text/plain; charset=utf-8")
        body = resolved.read_bytes()
    except OSError:
        return http_response(404, b"not found\n", "text/plain; charset=utf-8")
    ctype = _TYPES.get(resolved.suffix.lower()) or (
        mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
    )
    return http_response(200, body, ctype)


def request_token(path_and_query: str, headers: Headers | None) -> str | None:
    """The token of an HTTP request: ``Authorization: Bearer T`` or ``?token=T`` (what a
    browser link can carry); None when it has neither."""
    auth = headers.get("Authorization") if headers is not None else None
    if auth is not None:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    values = parse_qs(urlsplit(path_and_query).query).get("token")
    return values[0] if values else None


SeriesFn = Callable[[str | None, str, int | None], dict[str, Any] | None]


class HttpRoutes:
    """The non-WebSocket endpoints. ``health`` returns (ready, body); ``state`` gets the
    request's token and returns None when that token may not read the state (401); ``series``
    (``/api/series?bus=B[&addr=A]``) gets the token, the bus and the address, on the same
    terms; ``readiness`` (``/readyz``) returns (ready, body) like ``health``, for load
    balancers (503 while starting or draining)."""

    def __init__(
        self,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        metrics: Callable[[], bytes],
        state: Callable[[str | None], dict[str, Any] | None],
        static_dir: Path = STATIC_DIR,
        series: SeriesFn | None = None,
        readiness: Callable[[], tuple[bool, dict[str, Any]]] | None = None,
    ) -> None:
        self.health = health
        self.metrics = metrics
        self.state = state
        self.static_dir = static_dir
        self.series = series
        self.readiness = readiness

    def route(
        self, path_and_query: str, headers: Headers | None = None, method: str = "GET"
    ) -> Response | None:
        """The answer to one request; None: go on with the WebSocket handshake."""
        path = unquote(urlsplit(path_and_query).path)
        if path == WS_PATH:
            return None if method == "GET" else _not_allowed("GET")
        if method not in ("GET", "HEAD"):
            known = path in _GET_ROUTES or path.startswith("/static/")
            return _not_allowed("GET, HEAD") if known else _not_found()
        response = self._get(path, path_and_query, headers)
        if method == "HEAD":  # the GET's headers (Content-Length included), no body
            response.body = b""
        return response

    def _get(self, path: str, path_and_query: str, headers: Headers | None) -> Response:
        if path == "/healthz":
            ready, body = self.health()
            return json_response(200 if ready else 503, body)
        if path == "/readyz" and self.readiness is not None:
            ready, body = self.readiness()
            return json_response(200 if ready else 503, body)
        if path == "/metrics":
            return http_response(200, self.metrics(), CONTENT_TYPE)
        if path == "/api/state":
            state = self.state(request_token(path_and_query, headers))
            if state is None:
                return _unauthorized()
            return json_response(200, state)
        if path == "/api/series" and self.series is not None:
            return self._series(path_and_query, headers)
        if path in ("/", "/index.html"):
            index = self.static_dir / "index.html"
            if index.is_file():
                return _static(self.static_dir, "index.html")
            return http_response(200, PLACEHOLDER, "text/html; charset=utf-8")
        if path.startswith("/static/"):
            return _static(self.static_dir, path[len("/static/") :])
        return http_response(404, b"not found\n", "text/plain; charset=utf-8")

    def _series(self, path_and_query: str, headers: Headers | None) -> Response:
        query = parse_qs(urlsplit(path_and_query).query)
        bus = query.get("bus", [""])[0]
        addr_text = query.get("addr", [""])[0]
        if not bus or (addr_text and not addr_text.isdigit()) or len(addr_text) > 3:
            return json_response(400, {"error": "bus=NAME required; addr=0..255 optional"})
        assert self.series is not None
        found = self.series(
            request_token(path_and_query, headers), bus, int(addr_text) if addr_text else None
        )
        if found is None:
            return _unauthorized()
        return json_response(200, found)

    def process_request(self, _connection: object, request: Request) -> Response | None:
        """The ``process_request`` hook of :func:`websockets.asyncio.server.serve`.

        ``Request.method`` exists from websockets 15 on; older versions refuse any other method
        while parsing, so their requests are all GETs."""
        return self.route(request.path, request.headers, getattr(request, "method", "GET"))


_GET_ROUTES = frozenset(
    {"/healthz", "/readyz", "/metrics", "/api/state", "/api/series", "/", "/index.html"}
)


def _unauthorized() -> Response:
    return http_response(
        401,
        b"unauthorized: give a token (Authorization: Bearer T, or ?token=T)\n",
        "text/plain; charset=utf-8",
        WWW_Authenticate='Bearer realm="framebridge"',
    )


def _not_found() -> Response:
    return http_response(404, b"not found\n", "text/plain; charset=utf-8")


def _not_allowed(allow: str) -> Response:
    """405 with ``Allow``: a POST to ``/healthz`` must not look like a health check."""
    return http_response(405, b"method not allowed\n", "text/plain; charset=utf-8", Allow=allow)
