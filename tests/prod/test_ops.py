"""``framebridge check-config`` and ``--log-format json``, as an operator runs them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from bridge.check_config import check_config
from bridge.jsonlog import JsonFormatter, fields_of

EXE = str(Path(sys.executable).parent / "framebridge")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bridge.toml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=30, check=False)


def test_check_config_valid_file_exits_0() -> None:
    done = run("check-config", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout and done.stderr == ""


BAD = """\
[server]
node = "n1"
[limits]
drain_window_s = -1
heartbeat_s = "often"
[[bus]]
name = "bus0"
url = "socket://127.0.0.1:1"
timeout_s = 0
[[bus]]
name = "bus1"
url = "socket://127.0.0.1:2"
retries = "x"
[redis]
url = "redis://127.0.0.1:1"
bogus = 1
"""


def test_check_config_reports_every_error_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    done = run("check-config", str(path))
    assert done.returncode == 2 and done.stdout == ""
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("error: ")]
    keys = sorted(ln.split(": ")[1] for ln in lines)
    # both of [limits]', each bus's own, redis's unknown key
    assert keys == [
        "bus[0].timeout_s",
        "bus[1].retries",
        "limits.drain_window_s",
        "limits.heartbeat_s",
        "redis",
    ], lines
    assert "unknown key(s): bogus" in done.stderr
    assert "invalid (5 error(s))" in done.stderr


def test_check_config_unreadable_and_bad_toml(tmp_path: Path) -> None:
    assert run("check-config", str(tmp_path / "missing.toml")).returncode == 2
    path = tmp_path / "x.toml"
    path.write_text("[server\n")
    done = run("check-config", str(path))
    assert done.returncode == 2 and "not valid TOML" in done.stderr
    config, errors = check_config(EXAMPLE)
    assert config is not None and errors == []


def test_fields_of_event_messages() -> None:
    assert fields_of("plain text a=1") == {}
    got = fields_of("event=bus_owned bus=bus0 epoch=17 seq=0 lease='n1 5' ratio=0.5 ts=3")
    assert got == {
        "event": "bus_owned",
        "bus": "bus0",
        "epoch": 17,
        "seq": 0,
        "lease": "n1 5",
        "ratio": 0.5,
        "field_ts": 3,  # never overwrites the line's own ts
    }


def test_json_formatter_one_object_per_line() -> None:
    record = logging.LogRecord(
        "bridge.app", logging.INFO, __file__, 1, "event=stopping clients=%d", (3,), None
    )
    record.created = 0.25
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line) == {
        "ts": "1970-01-01T00:00:00.250Z",
        "level": "INFO",
        "logger": "bridge.app",
        "message": "event=stopping clients=3",
        "event": "stopping",
        "clients": 3,
    }


def test_log_format_json_on_a_real_command(tmp_path: Path) -> None:
    """``demo`` for a moment: every stderr line is a JSON object with the four keys."""
    done = run("--log-format", "json", "demo", "--listen", "127.0.0.1:0", "--duration", "0.5")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(ln) for ln in done.stderr.splitlines() if ln.strip()]
    assert lines, "no log lines"
    for obj in lines:
        assert {"ts", "level", "logger", "message"} <= obj.keys()
    assert any(obj.get("event") == "stopped" for obj in lines), lines
