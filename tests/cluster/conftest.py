"""Fixtures: one real redis-server per test module (a fresh key prefix per test), a simulator."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.servers import RedisProcess, redis_server

from .harness import start_sim, stop_proc

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisProcess]:
    with redis_server() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"t{next(_prefixes)}"


@pytest.fixture
async def sim() -> AsyncIterator[str]:
    proc, url = await start_sim()
    try:
        yield url
    finally:
        await stop_proc(proc)
