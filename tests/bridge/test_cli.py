"""Real `framebridge demo` and `framebridge bridge` processes: SIGTERM gives 1001, exit 0."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import build_parser, log_level, package_version
from bridge.client import BridgeClient
from bridge.config import ConfigError, load_config
from firmware_sim.bus import SimulatedBus

ROOT = Path(__file__).resolve().parents[2]


async def spawn(*args: str) -> asyncio.subprocess.Process:
    """``framebridge ARGS`` in a subprocess, its output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def read_url(proc: asyncio.subprocess.Process) -> str:
    """The WebSocket URL the process prints once it is listening."""
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        assert line, "process ended before printing its URL"
        if line.startswith("websocket:"):
            return line.split()[1]


async def start(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    """Spawn and wait until it listens: the process and its WebSocket URL."""
    proc = await spawn(*args)
    return proc, await read_url(proc)


async def check_sigterm_ends_cleanly(*args: str) -> str:
    """Run ``framebridge ARGS``; a subscribed client sees bus0's messages, then SIGTERM closes it
    with 1001 and the process exits 0; returns what it logged. The process is killed if anything
    fails on the way."""
    proc = await spawn(*args)
    try:
        url = await read_url(proc)
        async with BridgeClient(url, reconnect=False) as client:
            await client.subscribe(["*"])
            msg = await client.recv(5)
            assert msg["bus"] == "bus0"
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(Exception, match="1001"):
                while True:
                    await client.recv(10)
            assert client.close_codes == [1001]
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        _, err = await asyncio.wait_for(proc.communicate(), 15)
        return str(err.decode())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_demo_stops_on_sigterm_with_1001_and_exit_0() -> None:
    await check_sigterm_ends_cleanly(
        "demo", "--listen", "127.0.0.1:0", "--devices", "2", "--interval", "0.05"
    )


def bridge_toml(tmp_path: Path, link: Path) -> Path:
    """A config file: one bus at ``link``, device 1 polled every 0.05 s."""
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\n[[bus]]\nname = "bus0"\nurl = "{link}"\n'
        '[[bus.device]]\naddr = 1\nprofile = "thermo"\n'
        '[[bus.poll]]\ncmd = "read_regs"\ninterval_s = 0.05\n'
    )
    return cfg


async def test_bridge_with_config_file(tmp_path: Path) -> None:
    link = tmp_path / "ttySIM"
    async with SimulatedBus(count=1, profile="thermo", link=link):
        await check_sigterm_ends_cleanly("bridge", "--config", str(bridge_toml(tmp_path, link)))


async def test_bus_up_is_logged_once_at_the_default_level(tmp_path: Path) -> None:
    # issue 10: bus_up was invisible by default and logged twice with -v
    link = tmp_path / "ttySIM"
    async with SimulatedBus(count=1, profile="thermo", link=link):
        err = await check_sigterm_ends_cleanly(
            "bridge", "--config", str(bridge_toml(tmp_path, link))
        )
    assert err.count("event=bus_up") == 1, err


async def test_bad_config_exits_2_with_the_key_named(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[bus]]\nname = "b"\nurl = "x"\nbaud = 9600\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.cli",
        "bridge",
        "--config",
        str(cfg),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 2
    assert b"bus[0]: unknown key(s): baud" in err


@pytest.mark.parametrize("name", ["bridge.toml", "bridge-two-buses.toml"])
def test_example_configs_load(name: str) -> None:
    config = load_config(ROOT / "examples" / name)
    assert config.buses and json.dumps([b.name for b in config.buses])


def test_config_errors_name_the_location(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[limits]\nqueue_messages = -1\n")
    with pytest.raises(ConfigError, match=r"limits.queue_messages: must be > 0"):
        load_config(cfg)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--devices", "0"], "0 devices"),
        (["--profile", "nope"], "no such profile"),
        # the config refuses interval_s = 0; the flag standing for it did not
        (["--interval", "0"], "demo --interval (poll interval_s): must be > 0, got 0.0"),
        (["--heartbeat", "-1"], "demo --heartbeat (limits.heartbeat_s): must be > 0"),
    ],
)
def test_demo_bad_arguments_exit_2_without_traceback(args: list[str], message: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "demo", "--listen", "127.0.0.1:0", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr


def test_demo_on_a_taken_port_exits_2_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = subprocess.run(
            [sys.executable, "-m", "bridge.cli", "demo", "--listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert res.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr and "Traceback" not in res.stderr


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    res = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0
    assert (
        res.stdout.strip()
        == f"framebridge {version('framebridge')}"
        == (f"framebridge {package_version()}")
    )


@pytest.mark.parametrize(
    "argv,level",
    [
        (["encode", "--addr", "1", "--cmd", "3"], logging.WARNING),
        (["-v", "encode", "--addr", "1", "--cmd", "3"], logging.INFO),
        (["encode", "--addr", "1", "--cmd", "3", "-v"], logging.INFO),  # was: unrecognized
        (["decode", "aa", "-vv"], logging.DEBUG),
        (["-v", "sim", "--verbose"], logging.DEBUG),  # before and after add up
        (["demo"], logging.INFO),  # services show link changes (bus_up) by default
        (["bridge", "--config", "x.toml", "-v"], logging.DEBUG),
        (["-vvv", "demo"], logging.DEBUG),
    ],
)
def test_verbose_works_before_and_after_the_subcommand(argv: list[str], level: int) -> None:
    assert log_level(build_parser().parse_args(argv)) == level


def test_a_duplicate_device_address_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "dup.toml"
    cfg.write_text(
        '[[bus]]\nname = "b"\nurl = "x"\n'
        "[[bus.device]]\naddr = 1\n[[bus.device]]\naddr = 2\n[[bus.device]]\naddr = 2\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert str(info.value) == "bus[0].device[2].addr: address 2 is already used by bus[0].device[1]"


def test_a_pipe_closed_by_the_reader_ends_quietly() -> None:
    # ``framebridge decode FILE | head -1``: the reader leaves early; no BrokenPipe traceback
    hexes = "\n".join(["aa010202010239e9"] * 50000)  # 50,000 ECHO frames: 4 MB of JSON out
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "decode", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(hexes.encode())
    proc.stdin.close()
    proc.stdout.readline()
    proc.stdout.close()  # like head: read one line, then leave
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.wait(30)
    assert "Traceback" not in err and "BrokenPipe" not in err
