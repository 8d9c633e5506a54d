"""The test servers themselves: a real redis-server and a real 3-master Redis Cluster start."""

from __future__ import annotations

import subprocess

from tests.servers import redis_cluster, redis_server


def test_redis_server_starts_on_its_own_port_and_restarts() -> None:
    with redis_server() as r:
        assert r.port != 6379
        out = subprocess.run(
            ["redis-cli", "-p", str(r.port), "set", "k", "v"], capture_output=True, text=True
        )
        assert out.stdout.strip() == "OK"
        r.stop()
        r.start()
        out = subprocess.run(
            ["redis-cli", "-p", str(r.port), "get", "k"], capture_output=True, text=True
        )
        assert out.stdout.strip() == ""  # nothing kept on disk: a restart is a flush


def test_redis_cluster_of_three_masters_covers_every_slot() -> None:
    with redis_cluster() as nodes:
        info = subprocess.run(
            ["redis-cli", "-p", str(nodes[0].port), "cluster", "info"],
            capture_output=True,
            text=True,
        ).stdout
        assert "cluster_state:ok" in info and "cluster_known_nodes:3" in info
