"""The server's HTTP side: what ``/healthz``, ``/readyz``, ``/api/state`` and ``/api/series``
answer about this node, the routes (with ``/metrics``) wired to those answers, and the refusal
of new WebSocket upgrades while the node drains. Kept out of :mod:`bridge.server` so that stays
the WebSocket adapter; :mod:`bridge.web` serves the paths, this module says what a node is.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from .views import state_for
from .web import WS_PATH, HttpRoutes, json_response

if TYPE_CHECKING:
    from .server import BridgeServer

__all__ = ["ServerHttp"]


class ServerHttp:
    """The HTTP answers of one :class:`~bridge.server.BridgeServer` (read at each request)."""

    def __init__(self, server: BridgeServer) -> None:
        self.server = server

    def routes(self) -> HttpRoutes:
        return HttpRoutes(
            self.health,
            self.server.metrics.render,
            self.state_json,
            series=self.series_json,
            readiness=self.readiness,
        )

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """The routes, except that a draining node refuses the upgrade before the handshake."""
        server = self.server
        if server.draining and request.path.split("?", 1)[0] == WS_PATH:
            server.metrics.rejected.labels("draining").inc()
            return json_response(503, {"error": "draining", "node": server.node})
        return server.routes.process_request(conn, request)

    def state_json(self, token: str | None = None) -> dict[str, Any] | None:
        """``/api/state``: what ``token`` may see; None (401) when tokens are configured and
        this one is missing or not among them."""
        server = self.server
        principal = server.auth.authenticate(token or "", server.clock())
        if principal is None:  # no token is "", never an accepted one
            return None
        return {"node": server.node, "ts": server.clock(), "buses": state_for(server, principal)}

    def series_json(self, token: str | None, bus: str, addr: int | None) -> dict[str, Any] | None:
        """``/api/series``: the recent values of a bus's registers (one device's with ``addr``)
        that ``token`` may see; None (401) on the same terms as :meth:`state_json`."""
        server = self.server
        principal = server.auth.authenticate(token or "", server.clock())
        if principal is None:
            return None
        devices: dict[str, Any] = {}
        if server.series is not None and bus in server.buses and principal.may_see(bus, None):
            found = server.series.query(bus, addr)
            devices = {a: v for a, v in found.items() if principal.may_see(bus, int(a))}
        return {"bus": bus, "ts": server.clock(), "devices": devices}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """``/readyz``: should a load balancer send new clients here? Stricter than
        ``/healthz``: accepting (started, not draining) and, in cluster mode, Redis reachable
        and every bus this node polls still under its lease. A bus that is down does not make
        a node unready (every node would be: the bus is the same for all)."""
        server = self.server
        reasons: list[str] = []
        if server.draining:
            reasons.append("draining")
        elif not server.ready:
            reasons.append("starting")
        cluster = server.cluster
        if cluster is not None:
            if cluster.degraded:
                reasons.append("redis unreachable")
            lapsed = sorted(set(cluster.owned) - set(cluster.leases))
            if lapsed:
                reasons.append(f"lease lapsed: {', '.join(lapsed)}")
        body = {"ready": not reasons, "node": server.node, "reasons": reasons}
        return not reasons, body

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``/healthz``: up (200) while started and not draining, with every bus's state."""
        server = self.server
        buses: dict[str, dict[str, Any]] = {}
        for name, bus in server.buses.items():
            pos = server.hub.position(name)
            snap = bus.snapshot()
            online = sum(1 for d in snap.values() if d.get("online"))
            buses[name] = {
                "up": bus.up,
                "epoch": pos.epoch,
                "seq": pos.seq,
                "devices": len(snap),
                "devices_online": online,
            }
            if server.cluster is not None:  # every bus of the cluster, with the node polling it
                buses[name]["owner"] = getattr(bus, "owner", None)
                if getattr(bus, "note", ""):
                    buses[name]["note"] = bus.note  # type: ignore[attr-defined]
        up = [b["up"] for b in buses.values()]
        if server.cluster is not None and server.cluster.degraded:
            up.append(False)  # Redis unreachable: local buses serve, the cluster does not
        if server.draining:
            status = "stopping"
        elif not server.ready:
            status = "starting"  # listening, the buses' first open not yet tried
        else:  # a bus that is down is retried, and its clients stay: still ready, not healthy
            status = "ok" if all(up) else "degraded"
        ready = status in ("ok", "degraded")
        body = {
            "status": status,
            "node": server.node,
            "clients": len(server.conns),
            "uptime_s": round(time.monotonic() - server.started, 3),
            "buses": buses,
        }
        if server.cluster is not None:
            body["cluster"] = server.cluster.health()
        return ready, body
