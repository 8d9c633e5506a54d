"""When each client of a draining node is told 1001 (pure).

A node that closes every client at once sends all of them to the rest of the cluster in the same
second: a reconnect storm (handshakes, hellos, resumes, history reads) that a load balancer then
spreads over fewer nodes. Closing them in batches spread over ``limits.drain_window_s`` turns
the storm into a steady trickle; each client's own reconnect jitter spreads it further.
"""

from __future__ import annotations

__all__ = ["drain_batches"]

MAX_BATCHES = 50  # at most this many closing rounds (one per 100 ms for the default 5 s)
MIN_BATCH = 10  # fewer clients than this are no storm: closed in one round, without waiting


def drain_batches(
    count: int, window_s: float, *, max_batches: int = MAX_BATCHES, min_batch: int = MIN_BATCH
) -> list[tuple[float, int]]:
    """``count`` clients over ``window_s`` seconds: ``(offset_s, how_many)`` per batch, offsets
    from 0 and evenly spaced below ``window_s``, sizes differing by at most one and summing to
    ``count``, at least ``min_batch`` per batch (so a handful of clients is not kept waiting
    for nothing). A window of 0 (or ``min_batch`` clients or fewer) is a single batch at once."""
    if count <= 0:
        return []
    batches = 1 if window_s <= 0 else max(1, min(count // max(min_batch, 1), max_batches))
    base, extra = divmod(count, batches)
    step = window_s / batches if batches > 1 else 0.0
    return [(round(i * step, 6), base + (1 if i < extra else 0)) for i in range(batches)]
