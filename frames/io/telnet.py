"""The telnet layer of an RFC 2217 stream, decoded incrementally. Pure: bytes in, events out.

A serial server speaking RFC 2217 sends the serial data as telnet data (``0xFF`` doubled) mixed
with option negotiations (``IAC WILL/WONT/DO/DONT opt``), subnegotiations (``IAC SB ... IAC
SE``: the COM-PORT-OPTION answers and notifications) and other commands. :class:`TelnetDecoder`
splits a stream, fed in any pieces, into :class:`Data` runs (one per contiguous run, not one per
byte: a reply usually comes out as one ``bytes``), :class:`Negotiation`,
:class:`Subnegotiation` and :class:`Command` events, in order. A subnegotiation longer than
``max_sub`` is dropped (the data around it is kept), so a broken peer cannot grow the buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IAC", "Command", "Data", "Negotiation", "Subnegotiation", "TelnetDecoder"]

IAC, SB, SE = 0xFF, 0xFA, 0xF0
WILL, WONT, DO, DONT = 0xFB, 0xFC, 0xFD, 0xFE
_NEGOTIATIONS = frozenset((WILL, WONT, DO, DONT))

_NORMAL, _IAC, _NEGOTIATE, _SUB, _SUB_IAC = range(5)


@dataclass(frozen=True)
class Data:
    data: bytes


@dataclass(frozen=True)
class Negotiation:
    command: int  # WILL, WONT, DO or DONT
    option: int


@dataclass(frozen=True)
class Subnegotiation:
    payload: bytes  # between IAC SB and IAC SE, IAC IAC undoubled


@dataclass(frozen=True)
class Command:
    command: int  # any other command byte after IAC (NOP, BRK, ...)


Event = Data | Negotiation | Subnegotiation | Command


class TelnetDecoder:
    """Incremental telnet decoder; see the module docstring."""

    def __init__(self, *, max_sub: int = 1024) -> None:
        self.max_sub = max_sub
        self._state = _NORMAL
        self._verb = 0
        self._sub = bytearray()
        self._sub_overflow = False

    def feed(self, chunk: bytes) -> list[Event]:
        if self._state == _NORMAL and IAC not in chunk:
            return [Data(chunk)] if chunk else []  # the common case: plain serial data
        events: list[Event] = []
        data = bytearray()
        for byte in chunk:
            state = self._state
            if state == _NORMAL:
                if byte == IAC:
                    self._state = _IAC
                else:
                    data.append(byte)
            elif state == _IAC:
                if byte == IAC:
                    data.append(IAC)
                    self._state = _NORMAL
                    continue
                if data:
                    events.append(Data(bytes(data)))
                    data.clear()
                if byte in _NEGOTIATIONS:
                    self._verb = byte
                    self._state = _NEGOTIATE
                elif byte == SB:
                    self._sub.clear()
                    self._sub_overflow = False
                    self._state = _SUB
                else:
                    events.append(Command(byte))
                    self._state = _NORMAL
            elif state == _NEGOTIATE:
                events.append(Negotiation(self._verb, byte))
                self._state = _NORMAL
            elif state == _SUB:
                if byte == IAC:
                    self._state = _SUB_IAC
                else:
                    self._sub_byte(byte)
            else:  # _SUB_IAC
                if byte == IAC:
                    self._sub_byte(IAC)
                    self._state = _SUB
                elif byte == SE:
                    if not self._sub_overflow:
                        events.append(Subnegotiation(bytes(self._sub)))
                    self._sub.clear()
                    self._state = _NORMAL
                else:  # IAC x inside SB: malformed; RFC 854 says treat it as the end
                    self._sub.clear()
                    self._state = _NORMAL
        if data:
            events.append(Data(bytes(data)))
        return events

    def _sub_byte(self, byte: int) -> None:
        if len(self._sub) < self.max_sub:
            self._sub.append(byte)
        else:
            self._sub_overflow = True
