"""Every error the simulator raises, under one root.

Catch :class:`SimError` to catch them all. The tree::

    SimError
    ├── ProfileError        a profile file is missing or wrong (names the file and the key)
    ├── ConfigError         a bus config (file, CLI or API arguments) is wrong (names the key)
    ├── RegisterError       a register access a real device would refuse (carries the error code)
    ├── UnknownRegister     no register by that name or address in the profile (also a KeyError)
    └── BusError            the simulated port cannot be opened, unplugged or replugged

``ProfileError`` and ``ConfigError`` are also :class:`ValueError`; ``ProfileError`` is also
``frames.errors.DeviceMapError``. The device turns a ``RegisterError`` into an error reply
with its code.
"""

from __future__ import annotations

from frames.errors import DeviceMapError

__all__ = [
    "BusError",
    "ConfigError",
    "ProfileError",
    "RegisterError",
    "SimError",
    "UnknownRegister",
]


class SimError(Exception):
    """Root of every error raised by ``firmware_sim``."""


class ProfileError(SimError, DeviceMapError):
    """A profile that cannot be used; the message starts with ``source: key:``. Also the
    ``frames`` :class:`~frames.errors.DeviceMapError` it usually comes from (a profile is a
    device map plus the simulator's keys)."""


class ConfigError(SimError, ValueError):
    """A bus configuration that cannot be used; the message names the key at fault."""


class RegisterError(SimError):
    """A register access refused with a standard device error ``code`` (2 or 3)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class UnknownRegister(SimError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its argument; we want a readable message
        return str(self.args[0]) if self.args else "unknown register"


class BusError(SimError, OSError):
    """The simulated port could not be set up or changed."""
