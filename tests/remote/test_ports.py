"""Opening remote ports: negotiation errors that name the URL option to try, and baud-rate
changes that reach the serial server's tty (``stty`` on the pty ser2net drives)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from frames.errors import LinkDown
from frames.io import AsyncMaster, Master
from frames.io.ports import Rfc2217Port, explain_open_error

from .ser2net import Ser2net, tty_speed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyserial's threads


def test_hints_name_the_option_to_try() -> None:
    url = "rfc2217://h:1"
    control = explain_open_error(url, Exception("timeout while waiting for option 'control'"))
    assert "?ign_set_control" in control
    raw = explain_open_error(url, Exception("Remote does not seem to support RFC2217 or BINARY"))
    assert "socket://" in raw and "telnet(rfc2217)" in raw
    settings = explain_open_error(url, Exception("Remote does not accept parameter change"))
    assert "?timeout=" in settings
    # other errors and other URLs are left as they are
    assert explain_open_error(url, Exception("Connection refused")) == "Connection refused"
    plain = Exception("timeout while waiting for option 'control'")
    assert explain_open_error("socket://h:1", plain) == str(plain)


def test_ser2net_without_ign_set_control_says_to_add_it(server: Ser2net) -> None:
    url = f"rfc2217://127.0.0.1:{server.rfc_port}?timeout=0.5"
    with pytest.raises(LinkDown, match=r"\?ign_set_control"):
        Master(url, reconnect=False)


async def test_rfc2217_on_a_raw_tcp_port_says_so(server: Ser2net) -> None:
    url = f"rfc2217://127.0.0.1:{server.raw_port}?timeout=0.3"
    m = AsyncMaster(url, reconnect=False)
    with pytest.raises(LinkDown, match="socket://"):
        await m.open()
    await m.close()


def test_sync_baud_rate_change_reaches_the_tty(server: Ser2net) -> None:
    with Master(server.rfc2217_url, timeout=0.5, retries=0) as m:
        assert m.identify(1)["model"] == "THERMO-1"
        assert tty_speed(server.tty) == 115200
        m.set_baudrate(9600)
        assert tty_speed(server.tty) == 9600
        assert m.core.char_time == pytest.approx(10 / 9600)
        assert m.read_registers(1, 0, 2)  # the link still works
        port = m._port
        assert isinstance(port, Rfc2217Port) and port.negotiations == 2
        m.set_baudrate(115200)
        assert tty_speed(server.tty) == 115200


async def test_async_baud_rate_change_reaches_the_tty(server: Ser2net) -> None:
    async with AsyncMaster(server.rfc2217_url, timeout=0.5, retries=0, reconnect=False) as m:
        assert await m.identify(1)
        await m.set_baudrate(19200)
        assert tty_speed(server.tty) == 19200
        assert await m.read_registers(2, 0, 2)
    # a reopen uses the new rate
    async with AsyncMaster(server.rfc2217_url, baudrate=38400, reconnect=False) as m:
        assert await m.identify(1)
        assert tty_speed(server.tty) == 38400


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, timeout=20
    )


def test_request_and_monitor_commands_over_rfc2217(server: Ser2net) -> None:
    req = _cli("request", server.rfc2217_url, "--addr", "1", "--cmd", "identify")
    assert req.returncode == 0, req.stderr
    assert json.loads(req.stdout)["fields"]["model"] == "THERMO-1"
    mon = _cli("monitor", server.rfc2217_url, "--duration", "0.5")
    assert mon.returncode == 0, mon.stderr
    assert "0 frame(s)" in mon.stderr
    bad = _cli(
        "request",
        f"rfc2217://127.0.0.1:{server.rfc_port}?timeout=0.3",
        "--addr",
        "1",
        "--cmd",
        "identify",
    )
    assert bad.returncode == 5 and "ign_set_control" in bad.stderr
