"""Every error the ``bridge`` package raises, under one root.

Catch :class:`BridgeError` to catch them all. The tree::

    BridgeError
    ├── ConfigError        the configuration file is invalid (carries the location, e.g. bus[0].url)
    ├── ContractError      a client message breaks the wire contract (carries code, id)
    └── ClientError        the Python client library failed (closed, timed out, refused)
        ├── ClientTimeout  no answer in time (also a TimeoutError)
        └── ClientClosed   the connection is closed and will not be resumed (``code``)
            └── Unauthorized   the bridge refused the token (close code 4003)

Bad client input never escapes as an exception from the server: :class:`ContractError` becomes
an ``error`` reply on the same connection.
"""

from __future__ import annotations

__all__ = [
    "BridgeError",
    "ClientClosed",
    "ClientError",
    "ClientTimeout",
    "ConfigError",
    "ContractError",
    "Unauthorized",
]


class BridgeError(Exception):
    """Root of every error raised by ``bridge``."""


class ConfigError(BridgeError, ValueError):
    """Invalid configuration; ``where`` names the offending key so the message is actionable."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


class ContractError(BridgeError, ValueError):
    """A client message that breaks the contract; the server answers ``{"type":"error"}``."""

    def __init__(self, code: str, message: str, msg_id: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.msg_id = msg_id


class ClientError(BridgeError):
    """The client library could not do what was asked."""


class ClientClosed(ClientError):
    """The connection is closed for good (unauthorized, closed by the caller, or retries spent)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ClientTimeout(ClientError, TimeoutError):
    """No answer (or no connection) within the call's timeout; ``except TimeoutError`` works."""


class Unauthorized(ClientClosed):
    """The bridge closed with 4003: the token is not accepted. Not retried with the same token."""

    def __init__(self, message: str = "the bridge refused the token (4003)") -> None:
        super().__init__(message, 4003)
