"""Opening a port from a URL, with RFC 2217 (``rfc2217://``) made fit for a master.

Every adapter opens its port here (:func:`open_port`), so the fixes below hold for ``Master``,
``AsyncMaster``, ``request`` and ``monitor`` alike.

Why :class:`~frames.io.rfc2217.Rfc2217Port` exists: pyserial's RFC 2217 client renegotiates
*every* port setting with the server (SET-BAUDRATE, DATASIZE, PARITY, STOPSIZE, then
SET-CONTROL) whenever any attribute changes, ``timeout`` included, and each negotiation polls in
50 ms sleeps (plus a 100 ms sleep with ``ign_set_control``): a master that sets the read timeout
per read spends ~150 ms per read negotiating and its requests time out. It also refuses
``write_timeout`` outright (``NotImplementedError``), which the event-loop links set. The
subclass negotiates only when a setting the *server* applies changes (baud rate, framing, flow
control): once at open, and again when the user changes one. ``timeout`` and ``write_timeout``
stay local. It also queues received data in runs rather than byte by byte.

Negotiation failures get a hint naming the URL option to try (:func:`explain_open_error`).
The options of pyserial's RFC 2217 URL (``rfc2217://host:port?opt&opt=value``):

* ``ign_set_control``: do not wait for the server to echo SET-CONTROL (DTR/RTS/flow control)
  values. ser2net 4 answers with the line's state rather than the requested value, so without
  it the open fails with "timeout while waiting for option 'control'".
* ``poll_modem``: ask the server for the modem lines when they are read (CTS/DSR/RI/CD); off
  by default, and the masters never read them.
* ``timeout=SECONDS``: how long each negotiation step may take (default 3).
* ``logging=debug``: log the negotiation (logger ``pySerial.rfc2217``).
"""

from __future__ import annotations

import logging
from typing import Any

import serial

from ..master import MasterCore
from .rfc2217 import Rfc2217Port

__all__ = ["Rfc2217Port", "explain_open_error", "is_rfc2217", "open_port", "retune"]

log = logging.getLogger(__name__)

# pyserial's messages on a failed negotiation → what the user can do about it.
_HINTS = (
    (
        "waiting for option 'control'",
        "the server does not echo SET-CONTROL values (ser2net does not): add ?ign_set_control "
        "to the URL",
    ),
    (
        "does not seem to support RFC2217",
        "the server does not speak RFC 2217 on this port (ser2net needs the accepter "
        "'telnet(rfc2217),tcp,PORT'); a raw TCP port is socket://HOST:PORT; on a slow network "
        "raise the negotiation timeout with ?timeout=SECONDS",
    ),
    (
        "does not accept parameter change",
        "the server did not confirm the baud rate/framing in time: raise the negotiation "
        "timeout with ?timeout=SECONDS, or check that the server allows this baud rate",
    ),
    (
        "waiting for option",
        "the server did not answer an RFC 2217 request in time: raise the negotiation timeout "
        "with ?timeout=SECONDS, or try ?ign_set_control",
    ),
)


def is_rfc2217(url: str) -> bool:
    return url.lower().startswith("rfc2217://")


def explain_open_error(url: str, exc: BaseException) -> str:
    """``exc``'s message, plus the URL option to try when it is an RFC 2217 negotiation
    failure (see the module docstring)."""
    text = str(exc)
    if is_rfc2217(url):
        for needle, hint in _HINTS:
            if needle in text:
                return f"{text} ({hint})"
    return text


def open_port(url: str, *, baudrate: int, **options: Any) -> serial.SerialBase:
    """An open pyserial port for ``url`` (any pyserial URL or device path); ``options`` are
    ``serial_for_url``'s keyword arguments (``timeout`` among them).

    Raises ``serial.SerialException``/``OSError``/``ValueError`` like ``serial_for_url``; an
    RFC 2217 negotiation failure says which URL option to try.
    """
    if not is_rfc2217(url):
        return serial.serial_for_url(url, baudrate=baudrate, **options)
    port = Rfc2217Port(None, baudrate=baudrate, **options)
    port.port = url
    try:
        port.open()
    except serial.SerialException as exc:
        raise serial.SerialException(explain_open_error(url, exc)) from exc
    return port


def retune(core: MasterCore, baudrate: int, *, gap: float | None, idle_flush: float | None) -> None:
    """Set ``core``'s baud-rate-derived timing for a new ``baudrate``, as its constructor
    would: the character time, and the gap and idle flush unless the user fixed them."""
    core.set_baudrate(baudrate, gap=gap, idle_flush=idle_flush)
