"""Key and channel names, and the wire format of one published message. Pure.

Every key of one bus shares the hash tag ``{prefix:bus}``, so a Redis Cluster keeps them in one
slot: the append script touches the stream, the meta hash and the owner key atomically, and
the bus's shard channel (``SSUBSCRIBE``) lives on the same shard. Names are a contract
(operators read them with ``redis-cli``):

=============================  ==============================================================
``{P:bus}:stream``             the Stream: one entry per message, id ``0-<seq>``, field ``p``
``{P:bus}:meta``               hash: ``e`` epoch, ``s`` last written seq
``{P:bus}:owner``              ``<node> <token>`` of the owner's lease (PX ``ownership_ttl_s``)
``{P:bus}:fence``              the fencing counter (INCR on each lease taken)
``{P:bus}:ch``                 pub/sub channel of the bus's messages
``{P:bus}:req``                pub/sub channel of requests to the bus's owner
``{P:node:N}:rep``             replies to node N
``P:buses``                    set of every bus of the cluster
=============================  ==============================================================

The payload (stream entry and pub/sub message alike) is one line of header, a newline and the
message's JSON text exactly as clients get it, so a receiving node hands the text on without
parsing the JSON: ``<epoch> <seq> <ts> <addr or -> <origin node>\\n<text>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..store import Stamped

__all__ = ["Keys", "PayloadError", "decode_payload", "encode_payload"]


class PayloadError(ValueError):
    """A pub/sub message or stream entry that is not in the payload format."""


@dataclass(frozen=True)
class Keys:
    prefix: str = "framebridge"

    def _tag(self, bus: str) -> str:
        return f"{{{self.prefix}:{bus}}}"

    def stream(self, bus: str) -> str:
        return f"{self._tag(bus)}:stream"

    def meta(self, bus: str) -> str:
        return f"{self._tag(bus)}:meta"

    def owner(self, bus: str) -> str:
        return f"{self._tag(bus)}:owner"

    def fence(self, bus: str) -> str:
        return f"{self._tag(bus)}:fence"

    def channel(self, bus: str) -> str:
        return f"{self._tag(bus)}:ch"

    def requests(self, bus: str) -> str:
        return f"{self._tag(bus)}:req"

    def replies(self, node: str) -> str:
        return f"{{{self.prefix}:node:{node}}}:rep"

    @property
    def buses(self) -> str:
        return f"{self.prefix}:buses"

    def bus_of_channel(self, channel: str) -> str | None:
        """The bus a ``…:ch`` channel belongs to (None for another channel)."""
        head = f"{{{self.prefix}:"
        if channel.startswith(head) and channel.endswith("}:ch"):
            return channel[len(head) : -len("}:ch")]
        return None


def encode_payload(msg: Stamped, origin: str) -> str:
    addr = "-" if msg.addr is None else str(msg.addr)
    return f"{msg.epoch} {msg.seq} {msg.ts!r} {addr} {origin}\n{msg.text}"


def decode_payload(bus: str, payload: str | bytes) -> tuple[Stamped, str]:
    """(the message, the node that published it)."""
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", "replace")
    head, sep, text = payload.partition("\n")
    parts = head.split(" ")
    if not sep or len(parts) != 5:
        raise PayloadError(f"not a framebridge payload: {head[:60]!r}")
    try:
        epoch, seq, ts = int(parts[0]), int(parts[1]), float(parts[2])
        addr = None if parts[3] == "-" else int(parts[3])
    except ValueError:
        raise PayloadError(f"bad payload header {head[:60]!r}") from None
    return Stamped(bus, epoch, seq, ts, addr, text), parts[4]
