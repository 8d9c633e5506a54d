"""framebridge firmware simulator: simulated slave devices on real virtual serial ports.

The pure parts (profiles, registers, behaviours, devices, faults, the bus core) import no I/O;
:class:`SimulatedBus` and :class:`ThreadedSimulatedBus` (the pty/TCP adapters) are imported
lazily on first use, so loading a profile does not pull in asyncio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .behaviours import Behaviour, Constant, Counter, RandomWalk, Sine, Uptime
from .config import BusSpec, DeviceSpec, load_config, parse_config
from .core import BusCore, BusCounters, BusView
from .device import DeviceCounters, SimulatedDevice
from .errors import BusError, ConfigError, ProfileError, RegisterError, SimError, UnknownRegister
from .faults import NO_FAULTS, Delivery, FaultConfig, FaultInjector, OfflineWindow, wire_time
from .profile import Profile, available_profiles, load_profile, parse_profile
from .registers import Register

if TYPE_CHECKING:
    from .bus import SimulatedBus
    from .threaded import ThreadedSimulatedBus

__all__ = [
    "NO_FAULTS",
    "Behaviour",
    "BusCore",
    "BusCounters",
    "BusError",
    "BusSpec",
    "BusView",
    "ConfigError",
    "Constant",
    "Counter",
    "Delivery",
    "DeviceCounters",
    "DeviceSpec",
    "FaultConfig",
    "FaultInjector",
    "OfflineWindow",
    "Profile",
    "ProfileError",
    "RandomWalk",
    "Register",
    "RegisterError",
    "SimError",
    "SimulatedBus",
    "SimulatedDevice",
    "Sine",
    "ThreadedSimulatedBus",
    "UnknownRegister",
    "Uptime",
    "available_profiles",
    "load_config",
    "load_profile",
    "parse_config",
    "parse_profile",
    "wire_time",
]


def __getattr__(name: str) -> Any:
    if name == "SimulatedBus":
        from .bus import SimulatedBus

        return SimulatedBus
    if name == "ThreadedSimulatedBus":
        from .threaded import ThreadedSimulatedBus

        return ThreadedSimulatedBus
    raise AttributeError(f"module 'firmware_sim' has no attribute {name!r}")
