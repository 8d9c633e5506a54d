"""The examples a user copies from must keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_read_simulated_devices_example_runs() -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "read_simulated_devices.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["addr 1", "addr 2", "addr 3"]
    assert "THERMO-1" in lines[0]
    assert "setpoint of addr 2 now 22.5" in res.stdout
