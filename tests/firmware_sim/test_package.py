"""The package's public surface."""

from __future__ import annotations

import subprocess
import sys

import firmware_sim


def test_all_is_what_the_package_exports() -> None:
    for name in firmware_sim.__all__:
        assert getattr(firmware_sim, name) is not None, name
    assert firmware_sim.SimulatedBus.__module__ == "firmware_sim.bus"


def test_loading_profiles_does_not_import_asyncio() -> None:
    code = (
        "import sys, firmware_sim; firmware_sim.load_profile('thermo'); "
        "firmware_sim.SimulatedDevice(1); print('asyncio' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert res.stdout.strip() == "False", res.stderr
