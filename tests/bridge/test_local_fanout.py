"""One node's fan-out (:class:`bridge.local_fanout.LocalFanout`) driven directly: the order it
passes a bus on in (duplicates, held messages, gaps, epochs), who gets a message, and what a
resume's merge gives a session. Pure and fast: these pin the rules mutation testing found
unguarded (issue 18, docs/testing.md); the hub-level rules are in test_hub_conformance.py.
"""

from __future__ import annotations

from bridge.contract import Position, Topic, parse_topic
from bridge.local_fanout import FanoutStats, LocalFanout
from bridge.session import QueueLimits, Session
from bridge.store import Stamped

E = 5
B = [parse_topic("b/*")]


def msg(seq: int, bus: str = "b", addr: int | None = 1, epoch: int = E) -> Stamped:
    """Its text names it: ``b3`` is bus b seq 3 (addr 1, epoch E); others say what differs."""
    text = f"{bus}{seq}" + ("" if addr == 1 else f"a{addr}") + ("" if epoch == E else f"e{epoch}")
    return Stamped(bus, epoch, seq, 0.0, addr, text)


def fanout(hold_limit: int | None = None, **buses: int) -> LocalFanout:
    f = (
        LocalFanout(FanoutStats())
        if hold_limit is None
        else LocalFanout(FanoutStats(), hold_limit=hold_limit)
    )
    for bus, seq in buses.items():
        f.add_bus(bus, Position(E, seq))
    return f


def topics(text: str) -> list[Topic]:
    return [parse_topic(t) for t in text.split()]


def session(max_messages: int = 4096) -> Session:
    return Session("s", QueueLimits(max_messages=max_messages), 0.0)


def live(f: LocalFanout, text: str, max_messages: int = 4096) -> Session:
    s = session(max_messages)
    f.set_topics(s, topics(text))
    return s


def queued(s: Session) -> list[str]:
    out: list[str] = []
    while batch := s.take_batch():
        out.extend(batch)
    return out


def receive(f: LocalFanout, *msgs: Stamped) -> None:
    for m in msgs:
        f.receive(m)


# -- a bus's order on this node -----------------------------------------------------------------


def test_duplicates_are_dropped_and_counted() -> None:
    f = fanout(b=0)
    s = live(f, "b/*")
    receive(f, msg(1), msg(1), msg(2), msg(1))
    assert queued(s) == ["b1", "b2"]
    assert (f.stats.published, f.stats.duplicates, f.stats.deliveries) == (2, 2, 2)


def test_a_bus_keeps_its_first_position_and_an_unknown_bus_starts_at_its_first_message() -> None:
    f = fanout(b=5)
    f.add_bus("b", Position(E, 9))
    assert f.position("b") == Position(E, 5)
    s, q = live(f, "b/*"), live(f, "q/*")
    receive(f, msg(5), msg(6), msg(7, bus="q"))
    assert queued(s) == ["b6"] and queued(q) == ["q7"]
    assert f.position("q") == Position(E, 7) and f.stats.epoch_changes == 0


def test_a_new_epoch_starts_the_bus_over_and_drops_what_was_held() -> None:
    f = fanout(b=3)
    s = live(f, "b/*")
    receive(f, msg(5))  # 4 missing: held
    assert f.missing("b") and queued(s) == []
    receive(f, msg(1, epoch=E + 1))
    assert f.position("b") == Position(E + 1, 1) and not f.missing("b")
    receive(f, msg(1, epoch=E + 2))  # again, with nothing held
    assert queued(s) == ["b1e6", "b1e7"] and f.stats.epoch_changes == 2


def test_a_new_epoch_during_a_resume_reaches_the_session() -> None:
    # what the session had of the old epoch says nothing about the new one
    f = fanout(b=0)
    s = live(f, "b/*")
    receive(f, msg(1), msg(2), msg(3))
    w = f.begin(s, B)
    receive(f, msg(1, epoch=E + 1), msg(2, epoch=E + 1))
    assert f.finish(w, {}) == ["b1e6", "b2e6"]
    assert queued(s) == ["b1", "b2", "b3"]


def test_early_messages_are_held_up_to_the_limit_then_the_gap_is_skipped() -> None:
    f = fanout(hold_limit=2, b=0)
    s = live(f, "b/*")
    receive(f, msg(1), msg(3), msg(4))
    assert queued(s) == ["b1"] and f.stats.gaps == 0  # two held: at the limit, not over
    receive(f, msg(5))
    assert queued(s) == ["b3", "b4", "b5"] and f.stats.gaps == 1
    assert f.position("b") == Position(E, 5) and not f.missing("b")
    receive(f, msg(7), msg(8), msg(9))
    assert queued(s) == ["b7", "b8", "b9"] and f.stats.gaps == 2


def test_the_default_hold_limit_is_1024() -> None:
    f = fanout(b=0)
    s = live(f, "b/*")
    receive(f, *(msg(i) for i in range(2, 1026)))  # 1024 held
    assert queued(s) == [] and f.missing("b")
    receive(f, msg(1026))
    assert len(queued(s)) == 1025 and f.stats.gaps == 1 and f.position("b").seq == 1026


def test_skip_gives_up_on_a_gap_and_passes_on_what_follows() -> None:
    f = fanout(b=1)
    s = live(f, "b/*")
    f.skip("nope", 5)  # a bus this node does not know: nothing
    f.skip("b", 1)  # not past the position: nothing
    assert f.stats.gaps == 0 and f.position("b") == Position(E, 1)
    receive(f, msg(3), msg(4))
    f.skip("b", 4)  # what is held up to the skip point is dropped with it
    assert f.stats.gaps == 1 and f.position("b") == Position(E, 4) and not f.missing("b")
    receive(f, msg(6), msg(7))
    f.skip("b", 5)
    assert queued(s) == ["b6", "b7"] and f.stats.gaps == 2 and not f.missing("b")
    f.skip("b", 10)  # nothing held
    receive(f, msg(11))
    assert queued(s) == ["b11"] and f.stats.gaps == 3


# -- who gets a message --------------------------------------------------------------------------


def test_each_subscriber_gets_a_message_once_and_bus_events_reach_every_address() -> None:
    f = fanout(b=0, z=0)
    every, bus, a1, a2 = live(f, "*"), live(f, "b/*"), live(f, "b/1"), live(f, "b/2")
    both, other = live(f, "b/1 b/2"), live(f, "z/1")
    assert f.subscribers() == 6
    receive(f, msg(1), msg(2, addr=None))
    assert queued(every) == queued(bus) == queued(a1) == queued(both) == ["b1", "b2aNone"]
    assert queued(a2) == ["b2aNone"] and queued(other) == []
    assert (f.stats.published, f.stats.deliveries) == (2, 9)


def test_refused_offers_are_counted_per_session_and_message() -> None:
    f = fanout(b=0)
    s1, s2 = live(f, "b/*", max_messages=1), live(f, "b/*", max_messages=1)
    receive(f, msg(1), msg(2), msg(3))
    assert (f.stats.deliveries, f.stats.drops) == (2, 4)
    assert s1.overflowed and s2.overflowed


def test_unsubscribe_removes_only_what_the_session_had() -> None:
    f = fanout(b=0, z=0)
    s, other = live(f, "b/* z/*"), live(f, "b/*")
    a1, a1b = live(f, "b/1"), live(f, "b/1")
    assert f.unsubscribe(s, topics("z/* q/* z/*")) == topics("z/*")
    receive(f, msg(1), msg(1, bus="z"))
    assert queued(s) == queued(other) == queued(a1) == ["b1"]
    assert f.unsubscribe(other, B) == B and f.unsubscribe(a1, topics("b/1")) == topics("b/1")
    receive(f, msg(2))
    assert queued(s) == ["b2"] and queued(other) == [] and queued(a1) == []
    assert queued(a1b) == ["b1", "b2"]
    assert f.subscribers() == 2


# -- a resume: the wait, the merge, the floor -----------------------------------------------------


def test_a_waiting_session_buffers_only_its_addresses_up_to_its_queue_bound() -> None:
    f = fanout(b=0)
    s = session(max_messages=2)
    w = f.begin(s, topics("b/1"))
    receive(f, msg(1, addr=2), msg(2), msg(3))
    assert f.finish(w, {}) == ["b2", "b3"] and not s.overflowed


def test_one_waiting_session_overflowing_does_not_stop_the_others_buffering() -> None:
    f = fanout(b=0)
    small, big = session(max_messages=1), session()
    w1, w2 = f.begin(small, B), f.begin(big, B)
    receive(f, msg(1), msg(2))
    assert small.overflowed and f.finish(w1, {}) == []
    assert f.finish(w2, {}) == ["b1", "b2"]


def test_a_closing_or_overflowed_session_gets_no_replay() -> None:
    f = fanout(b=0)
    closing, overflowed = session(), session()
    w1, w2 = f.begin(closing, B), f.begin(overflowed, B)
    receive(f, msg(1))
    closing.closing = True
    overflowed.overflow()
    replay = {"b": (Position(E, 0), [msg(1)])}
    assert f.finish(w1, replay) == [] and f.finish(w2, replay) == []


def test_the_replay_gives_only_the_sessions_addresses_of_this_nodes_epoch() -> None:
    f = fanout(b=2)
    s = session()
    w = f.begin(s, topics("b/1"))
    assert f.finish(w, {"b": (Position(E, 0), [msg(1), msg(2, addr=2)])}) == ["b1"]
    s2 = session()
    w = f.begin(s2, B)
    # the store is already in the next epoch, this node not yet: those come live, once
    newer = [msg(1, epoch=E + 1), msg(2, epoch=E + 1)]
    assert f.finish(w, {"b": (Position(E + 1, 0), newer)}) == []
    receive(f, *newer)
    assert queued(s2) == ["b1e6", "b2e6"]


def test_what_a_session_had_live_is_not_replayed() -> None:
    f = fanout(b=0)
    one, every = live(f, "b/*"), live(f, "*")
    receive(f, msg(1))
    w = f.begin(one, B)
    assert f.finish(w, {"b": (Position(E, 0), [msg(1)])}) == []
    receive(f, msg(2), msg(3))
    w = f.begin(every, B)
    assert f.finish(w, {"b": (Position(E, 1), [msg(2), msg(3)])}) == []
    receive(f, msg(4))
    assert queued(every) == ["b1", "b2", "b3", "b4"] and queued(one) == ["b1", "b2", "b3", "b4"]


def test_a_position_the_client_gives_is_its_floor_even_for_live_messages() -> None:
    f = fanout(b=0)
    s = session()
    w = f.begin(s, B)
    receive(f, msg(1))  # buffered while the store is asked
    assert f.finish(w, {"b": (Position(E, 1), [])}) == []  # it had 1 (from another node)
    receive(f, msg(2))
    assert queued(s) == ["b2"]


def resumed_at(seq: int) -> tuple[LocalFanout, Session]:
    """A session on b and z that resumed b at ``seq``, on a node that has passed b up to 3."""
    f = fanout(b=3, z=0)
    s = session()
    w = f.begin(s, topics("b/* z/*"))
    assert f.finish(w, {"b": (Position(E, seq), [])}) == []
    return f, s


def test_a_client_exactly_at_this_nodes_position_goes_live_at_once() -> None:
    f, s = resumed_at(3)
    receive(f, msg(1, bus="z"))
    assert queued(s) == ["z1"]


def test_a_client_ahead_goes_live_when_this_node_reaches_its_position() -> None:
    f, s = resumed_at(5)
    receive(f, msg(4), msg(1, bus="z"))
    assert queued(s) == []
    receive(f, msg(5))  # caught up at 5: live from here
    assert queued(s) == ["z1"]
    receive(f, msg(2, bus="z"), msg(6))
    assert queued(s) == ["z2", "b6"]


def test_a_second_resume_lower_than_the_first_does_not_lower_its_wait() -> None:
    f, s = resumed_at(7)
    w = f.begin(s, B)
    assert f.finish(w, {"b": (Position(E, 5), [])}) == []
    receive(f, msg(4), msg(5), msg(6), msg(7))
    assert queued(s) == []  # it said it had 7
    receive(f, msg(8))
    assert queued(s) == ["b8"]


def test_a_second_resume_while_ahead_replays_nothing_twice() -> None:
    f = fanout(b=3, z=2)
    s = session()
    w = f.begin(s, B)
    assert f.finish(w, {"b": (Position(E, 5), [])}) == []  # waiting for this node to pass b 5
    w = f.begin(s, topics("z/*"))
    replay = [msg(1, bus="z"), msg(2, bus="z")]
    assert f.finish(w, {"z": (Position(E, 0), replay)}) == ["z1", "z2"]
    w = f.begin(s, topics("z/*"))
    assert f.finish(w, {"z": (Position(E, 1), replay[1:])}) == []  # it was given z2 just now


def test_a_replay_of_a_bus_this_node_does_not_know_yet() -> None:
    f = fanout(b=0)
    s = session()
    w = f.begin(s, topics("b/* q/*"))
    assert f.finish(w, {"q": (Position(E, 7), [msg(8, bus="q")])}) == []
    receive(f, msg(1))
    assert queued(s) == ["b1"]  # not waiting for q: this node cannot tell where q is
    f.add_bus("q", Position(E, 2))
    w = f.begin(s, topics("q/*"))
    receive(f, *(msg(i, bus="q") for i in range(3, 10)))
    assert f.finish(w, {}) == ["q8", "q9"]  # it said it had q up to 7


def test_a_session_covering_an_unknown_bus_can_resume() -> None:
    f = fanout(b=0)
    s = live(f, "q/*")
    w = f.begin(s, B)
    receive(f, msg(1))
    assert f.finish(w, {"b": (Position(E, 0), [])}) == ["b1"]


def test_unsubscribe_while_waiting_keeps_the_session_waiting() -> None:
    f = fanout(b=0, z=0)
    s = live(f, "b/* z/*")
    w = f.begin(s, B)
    assert f.unsubscribe(s, topics("z/*")) == topics("z/*")
    receive(f, msg(1), msg(1, bus="z"))
    assert queued(s) == []
    assert f.finish(w, {}) == ["b1"]
    receive(f, msg(2), msg(2, bus="z"))
    assert queued(s) == ["b2"]


def test_detach_cancels_only_that_sessions_wait() -> None:
    f = fanout(b=0)
    s1, s2 = session(), session()
    w1, w2 = f.begin(s1, B), f.begin(s2, B)
    f.detach(s1)
    receive(f, msg(1))
    assert f.finish(w1, {}) == [] and f.finish(w2, {}) == ["b1"]
    assert f.subscribers() == 1


def test_a_second_resume_while_the_first_waits_carries_its_buffer() -> None:
    f = fanout(b=0, z=0)
    s = session()
    w1 = f.begin(s, B)
    w2 = f.begin(s, topics("z/*"))
    receive(f, msg(1))
    assert f.finish(w1, {"b": (Position(E, 0), [])}) == []  # the later one answers for both
    receive(f, msg(2))
    assert queued(s) == []
    assert f.finish(w2, {}) == ["b1", "b2"]
    receive(f, msg(1, bus="z"), msg(3))
    assert queued(s) == ["z1", "b3"]


# -- a resume across a new epoch (Redis flushed: the store and other nodes may be ahead) ---------


def test_a_client_in_an_epoch_this_node_has_not_reached_gets_no_seq_twice() -> None:
    # the store and another node are in E+1, this node still in E: the client had E+1 up to 2
    f = fanout(b=3, z=0)
    s = session()
    w = f.begin(s, topics("b/* z/*"))
    newer = [msg(i, epoch=E + 1) for i in (1, 2, 3)]
    assert f.finish(w, {"b": (Position(E + 1, 2), newer[2:])}) == []
    receive(f, msg(1, bus="z"), *newer)
    assert queued(s) == ["z1", "b3e6"]  # not E+1 1 and 2 again


def test_a_client_in_a_newer_epoch_is_held_until_this_node_reaches_its_position() -> None:
    f = fanout(b=3, z=0)
    s = session()
    w = f.begin(s, topics("b/* z/*"))
    receive(f, msg(4))  # this node still passes E on: not for a client already in E+1
    assert f.finish(w, {"b": (Position(E + 1, 2), [msg(3, epoch=E + 1)])}) == []
    receive(f, msg(5), msg(1, bus="z"), msg(1, epoch=E + 1))
    assert queued(s) == []  # held: this node has not passed E+1 seq 2 yet
    receive(f, msg(2, epoch=E + 1), msg(2, bus="z"), msg(3, epoch=E + 1))
    assert queued(s) == ["z1", "z2", "b3e6"]


def test_a_client_waiting_for_a_seq_this_node_skips_by_a_new_epoch_gets_the_new_epoch() -> None:
    f, s = resumed_at(5)  # this node at E 3, the client at E 5
    receive(f, msg(4), msg(1, epoch=E + 1))  # the history lost before this node reached 5
    assert queued(s) == ["b1e6"]  # not E 4 (it had it), all of E+1
    receive(f, msg(2, epoch=E + 1))
    assert queued(s) == ["b2e6"]


def test_a_client_two_epochs_ahead_waits_through_the_epoch_between() -> None:
    f = fanout(b=3)
    s = session()
    w = f.begin(s, B)
    assert f.finish(w, {"b": (Position(E + 2, 1), [])}) == []
    receive(f, msg(1, epoch=E + 1), msg(1, epoch=E + 2), msg(2, epoch=E + 2))
    assert queued(s) == ["b2e7"]


def test_a_replay_of_the_epoch_before_this_nodes_comes_before_the_new_epoch() -> None:
    # the store answered in E, then Redis was flushed and this node went on in E+1: the client
    # gets the rest of E (replayed or passed on here) and then E+1 from its start, like a live
    # session, and its position in E says nothing about E+1
    f = fanout(b=3)
    s = session()
    w = f.begin(s, B)
    receive(f, msg(4), msg(5), msg(1, epoch=E + 1), msg(2, epoch=E + 1))
    replay = {"b": (Position(E, 4), [msg(5), msg(6)])}  # it had 4; 5 buffered too
    assert f.finish(w, replay) == ["b5", "b6", "b1e6", "b2e6"]
    receive(f, msg(3, epoch=E + 1))
    assert queued(s) == ["b3e6"]


def test_what_was_buffered_of_the_old_epoch_comes_before_the_new_one() -> None:
    f = fanout(b=0)
    s = live(f, "b/*")
    receive(f, msg(1))
    w = f.begin(s, B)
    receive(f, msg(2), msg(1, epoch=E + 1))
    assert f.finish(w, {}) == ["b2", "b1e6"]  # what a live session had: E 2, then E+1
    assert queued(s) == ["b1"]


def test_a_second_resume_while_held_for_a_newer_epoch_gives_none_of_the_old_one() -> None:
    f = fanout(b=3, z=0)
    s = session()
    w = f.begin(s, B)
    assert f.finish(w, {"b": (Position(E + 1, 1), [])}) == []
    receive(f, msg(4))
    w = f.begin(s, topics("z/*"))
    receive(f, msg(1, bus="z"), msg(5))
    assert f.finish(w, {}) == ["z1"]  # not b4 or b5: the client is in E+1; it waits on
    receive(f, msg(1, epoch=E + 1), msg(2, epoch=E + 1))
    assert queued(s) == ["b2e6"]


# -- seqs withdrawn (a former owner that served while Redis did not answer) -------------------

RESET = '{"type":"bus_reset","bus":"b"}'


def test_withdrawn_seqs_reset_the_buses_sessions_and_the_streams_messages_flow_on() -> None:
    """Regression (issue 13, lease churn): seqs 4-5 were served by this node as an owner that
    then lost its lease; the next owner numbers 4 anew. Before: its 4 and 5 were dropped as
    duplicates (its clients silent until it overtook 5), and the clients held this node's."""
    f = fanout(b=0, q=0)
    s, one, every, other = live(f, "b/*"), live(f, "b/2"), live(f, "*"), live(f, "q/*")
    receive(f, *(msg(i) for i in range(1, 6)))
    queued(s), queued(one), queued(every)
    f.withdraw("b", Position(E, 3))
    assert f.position("b") == Position(E, 3) and f.stats.withdrawals == 1
    assert queued(s) == queued(one) == queued(every) == [RESET] and queued(other) == []
    theirs = [Stamped("b", E, i, 0.0, 1, f"new{i}") for i in (4, 5, 6)]
    receive(f, *theirs)
    assert queued(s) == queued(every) == ["new4", "new5", "new6"]
    assert f.position("b") == Position(E, 6) and f.stats.duplicates == 0


def test_a_withdraw_that_is_not_behind_this_node_or_in_its_epoch_does_nothing() -> None:
    f = fanout(b=3)
    s = live(f, "b/*")
    for pos in (Position(E, 3), Position(E, 7), Position(E + 1, 1)):
        f.withdraw("b", pos)
    f.withdraw("nobus", Position(E, 0))
    assert f.position("b") == Position(E, 3) and queued(s) == [] and f.stats.withdrawals == 0


def test_a_withdraw_counts_in_its_own_epoch_only_and_each_one_is_counted() -> None:
    f = fanout(b=9)
    s = live(f, "b/*")
    f.withdraw("b", Position(9, 3))  # seq 9 is this node's, but in epoch E: not the same seq 3
    assert f.position("b") == Position(E, 9) and queued(s) == [] and f.stats.withdrawals == 0
    f.withdraw("b", Position(E, 7))
    f.withdraw("b", Position(E, 4))
    assert f.position("b") == Position(E, 4) and f.stats.withdrawals == 2
    assert queued(s) == [RESET, RESET]


def test_resumes_waiting_across_a_withdraw_get_the_streams_messages_after_it() -> None:
    f = fanout(b=0)
    early, late = live(f, "b/*"), live(f, "b/*")
    receive(f, *(msg(i) for i in range(1, 4)))
    w1 = f.begin(early, B)  # has had 3; 4 and 5 are buffered for it
    receive(f, msg(4), msg(5))
    w2 = f.begin(late, B)  # has had 5
    f.withdraw("b", Position(E, 3))
    receive(f, Stamped("b", E, 4, 0.0, 1, "new4"))
    for w, s in ((w1, early), (w2, late)):
        assert f.finish(w, {"b": (Position(E, 3), [])}) == ["new4"]
        assert queued(s)[-1] == RESET
    receive(f, Stamped("b", E, 5, 0.0, 1, "new5"))
    assert queued(early) == queued(late) == ["new5"]


def test_a_session_waiting_too_long_for_this_node_to_catch_up_is_closed_not_left_silent() -> None:
    f = fanout(b=3)
    ahead, resuming = session(), session()
    w = f.begin(ahead, B)
    assert f.finish(w, {"b": (Position(E, 5), [])}) == []  # the client is at 5, this node at 3
    f.begin(resuming, B)  # awaiting the store: bounded by the store's timeouts, not here
    assert f.overdue(100.0, 10.0) == 0  # its time starts
    w2 = f.begin(ahead, topics("q/*"))  # a second resume carries the wait and its time
    assert f.finish(w2, {}) == [] and f.overdue(110.0, 10.0) == 0
    assert not ahead.overflowed
    assert f.overdue(110.5, 10.0) == 1 and f.stats.overdue == 1
    assert ahead.overflowed and not resuming.overflowed
    assert f.overdue(1000.0, 10.0) == 0 and f.subscribers() == 1
    assert f.stats.overdue == 1  # a running count, not the last call's
