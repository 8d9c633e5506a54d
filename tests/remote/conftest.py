"""One ser2net serving one simulator for the module's tests (see ser2net.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .ser2net import Ser2net, serial_server


@pytest.fixture(scope="module")
def server() -> Iterator[Ser2net]:
    with serial_server() as s:
        yield s


@pytest.fixture(params=["rfc2217", "socket"])
def url(request: pytest.FixtureRequest, server: Ser2net) -> str:
    """Each test runs over RFC 2217 and over raw TCP, through the same ser2net."""
    return server.rfc2217_url if request.param == "rfc2217" else server.socket_url
