"""A bus's request queue without sockets: bounded, per client, and fair to groups when full."""

from __future__ import annotations

from bridge.bus_queue import RequestQueues

FLOOD = [f"tenant:flood/{i}" for i in range(4)]
CALM = "tenant:calm/x"


def filled(bound: int = 8, per_client: int = 4) -> RequestQueues[str]:
    """A queue the flood has filled: its 4 connections hold ``bound`` requests."""
    q: RequestQueues[str] = RequestQueues(bound, per_client)
    for n in range(bound):
        client = FLOOD[n % 4]
        assert q.refusal(client) is None
        assert q.push(client, f"{client}#{n}") is None
    assert len(q) == bound
    return q


def test_a_full_queue_makes_room_for_another_tenant_by_dropping_the_largest_groups_newest() -> None:
    q = filled()
    assert q.refusal(FLOOD[0]) == "8 requests are queued"  # the flood itself: refused at once
    assert q.refusal(CALM) is None
    evicted = q.push(CALM, "calm#0")
    assert evicted == "tenant:flood/0#4"  # the newest of a client with the most waiting
    assert len(q) == 8  # the bound is exact
    assert list(q.waiting[CALM]) == ["calm#0"]
    assert list(q.waiting[FLOOD[0]]) == ["tenant:flood/0#0"]
    # the evicted one no longer counts against its client: it may send again (and is refused
    # only because its tenant still holds more of the queue than the other)
    assert q.refusal(FLOOD[0]) == "8 requests are queued"
    assert q.refusal(CALM) is None  # 7 vs 1: still room for the calm tenant's second


def test_groups_within_one_of_each_other_do_not_trade_places() -> None:
    q: RequestQueues[str] = RequestQueues(5, 4)
    for i, client in enumerate(["tenant:a/1", "tenant:b/1", "tenant:a/2", "tenant:b/2"]):
        assert q.push(client, str(i)) is None
    assert q.push("tenant:a/3", "4") is None  # a: 3, b: 2, full
    assert q.refusal("tenant:a/1") == "5 requests are queued"
    assert q.refusal("tenant:b/3") == "5 requests are queued"  # 3 < 2 + 2: no trade
    assert q.take("tenant:b/1") == "1"
    assert q.push("tenant:a/1", "5") is None  # a: 4, b: 1, full
    assert q.refusal("tenant:b/3") is None
    assert q.push("tenant:b/3", "6") == "5"  # a/1 had the most waiting of a: its newest
    assert q.refusal("tenant:b/1") == "5 requests are queued"  # a: 3, b: 2 again


def test_a_clients_own_bound_counts_requests_on_the_wire_until_finished() -> None:
    q: RequestQueues[str] = RequestQueues(32, 2)
    q.push("s1", "a")
    q.push("s1", "b")
    assert q.refusal("s1") == "2 requests of yours are in progress"
    assert q.take("s1") == "a"
    assert "s1" in q.waiting and len(q) == 1
    assert q.refusal("s1") is not None  # "a" is on the wire: still two in progress
    q.finished("s1")
    assert q.refusal("s1") is None
    assert q.take("s1") == "b" and "s1" not in q.waiting and not q
    q.finished("s1")
    for n in range(40):  # the caller naming no client has no bound of its own
        if q.refusal("") is None:
            q.push("", str(n))
    assert len(q) == 32 and q.refusal("") == "32 requests are queued"


def test_clear_hands_back_every_waiting_request_and_keeps_counting_the_one_on_the_wire() -> None:
    q = filled(per_client=2)
    assert q.take(FLOOD[1]) == "tenant:flood/1#1"
    items = q.clear()
    assert len(items) == 7 and "tenant:flood/1#1" not in items
    assert not q and not q.waiting
    assert all(q.refusal(client) is None for client in FLOOD)
    q.push(FLOOD[1], "again")
    assert q.refusal(FLOOD[1]) == "2 requests of yours are in progress"  # #1 is still out
    q.finished(FLOOD[1])
    assert q.refusal(FLOOD[1]) is None
