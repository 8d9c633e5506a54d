"""Two nodes' policies on one real Redis share a tenant's connection count and request rate."""

from __future__ import annotations

import pytest
from redis import asyncio as aioredis

from bridge.acl import Principal, Tier
from bridge.contract import Request
from bridge.quota import TenantPolicy
from bridge.quota_redis import SharedCounts
from tests.servers import redis_server

TIER = Tier("t", connections=4, requests_per_s=10.0, requests_burst=10.0)
ACME = Principal("acme", tenant="acme", tier=TIER)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_two_nodes_share_a_tenants_connections_and_rate() -> None:
    with redis_server() as server:
        clock = Clock()
        r1 = aioredis.from_url(server.url)
        r2 = aioredis.from_url(server.url)
        a, b = TenantPolicy(100, clock), TenantPolicy(100, clock)
        share_a = SharedCounts(r1, a, "node-a", interval_s=1.0, clock=clock, tenants=["acme"])
        share_b = SharedCounts(r2, b, "node-b", interval_s=1.0, clock=clock, tenants=["acme"])
        try:
            for _ in range(3):
                assert a.admit_connection(ACME, 0) is None
            await share_a.share()
            await share_b.share()  # node b now knows node a holds 3
            assert b.usage["acme"].remote_connections == 3
            assert b.admit_connection(ACME, 0) is None  # the 4th, cluster-wide
            refusal = b.admit_connection(ACME, 0)
            assert refusal is not None and refusal.close == 1013
            a.release(ACME)
            clock.now += 0.5
            await share_a.share()
            await share_b.share()
            assert b.admit_connection(ACME, 0) is None  # room again
            # rate: node a's requests drain node b's bucket too
            req = Request("bus0", 1, "echo")
            for _ in range(8):
                assert a.admit_request(ACME, req) is None
                a.request_done(ACME, req)
            clock.now += 1.0
            await share_a.share()  # a saw 8 requests/s
            await share_b.share()
            assert b.usage["acme"].remote_requests == pytest.approx(8.0, rel=0.01)
            admitted = 0
            for _ in range(10):
                if b.admit_request(ACME, req) is None:
                    admitted += 1
            assert admitted <= 6  # alone it would have taken all 10
            # a node that stops sharing is forgotten after ttl_s
            clock.now += share_a.ttl_s + 1
            await share_b.share()
            assert b.usage["acme"].remote_connections == 0
        finally:
            await r1.aclose()
            await r2.aclose()
