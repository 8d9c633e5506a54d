"""Real servers for tests, started on free loopback ports in temp dirs (never the machine's own).

``mosquitto_server()`` starts Debian's ``mosquitto`` with a temp config (anonymous, loopback,
no persistence: a restart loses every retained message, which the MQTT tests rely on).

``redis_server()`` starts one ``redis-server``; ``redis_cluster()`` three with
``--cluster-enabled yes`` joined by ``redis-cli --cluster create``. Each waits (bounded) until
the server answers and is stopped at the end of the ``with``. Shared by every test that needs
Redis (the cluster, tenants' shared quotas), so there is one way to start them.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def stop_process(proc: subprocess.Popen[Any], *, kill: bool = False) -> None:
    """SIGTERM (SIGKILL with kill=True), then SIGKILL if it has not exited within 10 s: every
    server and child process the tests start ends the same bounded way."""
    if proc.poll() is None:
        (proc.kill if kill else proc.terminate)()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


__all__ = [
    "MosquittoProcess",
    "RedisProcess",
    "free_port",
    "mosquitto_server",
    "redis_cluster",
    "redis_server",
    "stop_process",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too: Redis refuses ports > 55535 in
    cluster mode, and the kernel's ephemeral range goes up to 60999."""
    for _ in range(200):
        port = free_port()
        if port <= 55535:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisProcess:
    """One redis-server; ``stop()``/``start()`` restart it on the same port and dir."""

    port: int
    dir: Path
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> RedisProcess:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        self.proc = subprocess.Popen(
            [
                exe,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
                "--logfile", str(self.dir / "redis.log"),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(kill=True)
                log = self.dir / "redis.log"
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise RuntimeError(f"redis-server on {self.port} did not start: {tail}")
            time.sleep(0.02)
        return self

    def start_on_a_free_port(
        self, tries: int = 3, pick: Callable[[], int] = free_port
    ) -> RedisProcess:
        """:meth:`start`, taking another free port when the first was taken meanwhile (a free
        port is only free until someone binds it: other test processes run beside us)."""
        for attempt in range(tries):
            try:
                return self.start()
            except RuntimeError:
                if attempt == tries - 1:
                    raise
                self.port = pick()
        raise AssertionError("unreachable")

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None:
            stop_process(self.proc, kill=kill)
        self.proc = None


@contextlib.contextmanager
def redis_server(*extra: str) -> Iterator[RedisProcess]:
    with tempfile.TemporaryDirectory(prefix="fb-redis-") as tmp:
        server = RedisProcess(free_port(), Path(tmp), extra).start_on_a_free_port()
        try:
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def redis_cluster(masters: int = 3) -> Iterator[list[RedisProcess]]:
    """A Redis Cluster of ``masters`` masters (no replicas); yields its nodes."""
    with tempfile.TemporaryDirectory(prefix="fb-rcluster-") as tmp:
        nodes: list[RedisProcess] = []
        try:
            for i in range(masters):
                d = Path(tmp) / str(i)
                d.mkdir()
                extra = ("--cluster-enabled", "yes", "--cluster-config-file", str(d / "n.conf"))
                node = RedisProcess(cluster_port(), d, extra)
                nodes.append(node.start_on_a_free_port(pick=cluster_port))
            subprocess.run(
                ["redis-cli", "--cluster", "create",
                 *(f"127.0.0.1:{n.port}" for n in nodes), "--cluster-yes"],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            deadline = time.monotonic() + 20
            while True:  # every node must agree the slots are covered
                infos = [
                    subprocess.run(
                        ["redis-cli", "-p", str(n.port), "cluster", "info"],
                        capture_output=True,
                        text=True,
                        timeout=5,
                    ).stdout
                    for n in nodes
                ]
                if all("cluster_state:ok" in i for i in infos):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("redis cluster did not reach cluster_state:ok")
                time.sleep(0.05)
            yield nodes
        finally:
            for n in nodes:
                n.stop()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class MosquittoProcess:
    """One mosquitto broker; ``stop()``/``start()`` restart it on the same port."""

    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> MosquittoProcess:
        exe = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if exe is None:
            raise RuntimeError("mosquitto is not installed (scripts/setup-system.sh installs it)")
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
        )
        with open(self.dir / "mosquitto.log", "ab") as logfile:  # the child keeps its own fd
            self.proc = subprocess.Popen(
                [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=logfile
            )
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto on {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None


@contextlib.contextmanager
def mosquitto_server() -> Iterator[MosquittoProcess]:
    with tempfile.TemporaryDirectory(prefix="fb-mosquitto-") as tmp:
        server = MosquittoProcess(free_port(), Path(tmp)).start()
        try:
            yield server
        finally:
            server.stop()
