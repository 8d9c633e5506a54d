"""Several bridge nodes on one Redis (issue 11): shared history, bus ownership, routed requests.

The in-memory single node (:class:`bridge.fanout.InMemoryHub`) stays the default; with a
``[redis]`` table the bridge builds a :class:`bridge.fanout.NodeHub` over a
:class:`~bridge.cluster.store.RedisStore` and a :class:`~bridge.cluster.broker.RedisBroker`,
and :class:`~bridge.cluster.node.ClusterNode` runs the rest (ownership leases, position checks,
requests to remote owners). The model is centrifuge's Redis broker: one Stream per bus, a meta
hash with epoch and seq, append and publish in one Lua script, a position check per node.

Pure parts: :mod:`~bridge.cluster.keys` (key names, the payload format). The others are thin
adapters over redis-py's asyncio client.
"""

from __future__ import annotations
