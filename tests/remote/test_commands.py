"""The standard command set through a real ser2net, over ``rfc2217://`` and ``socket://``,
with the blocking and the asyncio master. On the old code every RFC 2217 request timed out
(sync: pyserial renegotiated on each per-read timeout change) or the open failed (async:
``NotImplementedError: write_timeout``)."""

from __future__ import annotations

import pytest

from frames.errors import DeviceError, Timeout
from frames.io import AsyncMaster, Master
from frames.io.ports import Rfc2217Port

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyserial's threads

# 0xFF is telnet's IAC: RFC 2217 must escape it both ways.
PAYLOAD = b"\xff\x00\xff\xffhello\xfe"


def test_sync_standard_commands(url: str) -> None:
    with Master(url, timeout=0.5, retries=0) as m:
        ident = m.identify(1)
        assert ident["model"] == "THERMO-1"
        assert m.echo(2, PAYLOAD) == PAYLOAD
        m.write_register(2, 2, 2150)
        assert m.read_registers(2, 2, 1) == [2150]
        m.write_registers(1, 2, [2200])
        assert m.read_registers(1, 2, 1) == [2200]
        with pytest.raises(DeviceError) as err:
            m.read_registers(1, 200, 1)
        assert err.value.code == 2
        with pytest.raises(Timeout):
            m.request(9, "identify", timeout=0.05)
        for _ in range(30):
            assert len(m.read_registers(1, 0, 4)) == 4
        port = m._port
        if isinstance(port, Rfc2217Port):
            assert port.negotiations == 1  # at open only, never per read
        assert m.stats.timeouts == 1


async def test_async_standard_commands(url: str) -> None:
    async with AsyncMaster(url, timeout=0.5, retries=0, reconnect=False) as m:
        ident = await m.identify(2)
        assert ident["model"] == "THERMO-1"
        assert await m.echo(1, PAYLOAD) == PAYLOAD
        await m.write_register(1, 2, 2050)
        assert await m.read_registers(1, 2, 1) == [2050]
        await m.write_registers(2, 2, [2100])
        assert await m.read_registers(2, 2, 1) == [2100]
        with pytest.raises(DeviceError):
            await m.read_registers(2, 200, 1)
        with pytest.raises(Timeout):
            await m.request(9, "identify", timeout=0.05)
        for _ in range(30):
            assert len(await m.read_registers(1, 0, 4)) == 4
        port = m._serial
        if isinstance(port, Rfc2217Port):
            assert port.negotiations == 1
        assert m.stats.timeouts == 1
    assert not m.connected
