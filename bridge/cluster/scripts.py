"""The Lua scripts: each one atomic step, one round trip (centrifuge's history_add_stream).

``APPEND`` writes a batch of one bus's messages: it checks the writer's lease (the fencing
token), keeps seqs contiguous (an entry already written is skipped, so a retried batch is
harmless; a missing one is reported), adds each entry to the Stream, publishes it, and moves
the meta hash's ``s``. A seq already written by *another* owner (the batch's last such seq
does not hold this batch's entry) is ``taken``: the writer's lease lapsed, another node
numbered on, and the writer took the lease again with a numbering that is stale; skipping
those seqs as written (as it did) froze the stream until the stale numbering overtook it.
The epoch is set only when the bus has no meta yet *and* the batch starts at seq 1; a meta
that is gone while the writer is further on means the history was lost (flushed, expired,
failed over): the script says ``lost`` and the writer starts a new epoch.
"""

from __future__ import annotations

__all__ = ["APPEND", "RELEASE", "RENEW"]

# KEYS: stream, meta, owner
# ARGV: epoch, token ('' = unfenced), maxlen, stream ttl ms, meta ttl ms, channel,
#       publish command, reset ('1': a new epoch: drop the stream first), then seq, payload pairs
APPEND = """
local epoch = ARGV[1]
if ARGV[2] ~= '' and redis.call('get', KEYS[3]) ~= ARGV[2] then
  return {'fenced', '0'}
end
if ARGV[8] == '1' then
  redis.call('del', KEYS[1])
  redis.call('hset', KEYS[2], 'e', epoch, 's', 0)
end
local cur = redis.call('hmget', KEYS[2], 'e', 's')
local s
if not cur[1] then
  if tonumber(ARGV[9]) ~= 1 then return {'lost', '0'} end
  redis.call('hset', KEYS[2], 'e', epoch, 's', 0)
  s = 0
elseif cur[1] ~= epoch then
  return {'epoch', cur[1]}
else
  s = tonumber(cur[2])
end
local last = 0
for i = 9, #ARGV, 2 do
  if tonumber(ARGV[i]) <= s then last = i end
end
if last > 0 then
  local got = redis.call('xrange', KEYS[1], '0-' .. ARGV[last], '0-' .. ARGV[last])
  if #got == 0 or got[1][2][2] ~= ARGV[last + 1] then return {'taken', tostring(s)} end
end
local written = 0
local result = 'ok'
for i = 9, #ARGV, 2 do
  local seq = tonumber(ARGV[i])
  if seq == s + 1 then
    redis.call('xadd', KEYS[1], 'MAXLEN', '~', ARGV[3], '0-' .. seq, 'p', ARGV[i + 1])
    redis.call(ARGV[7], ARGV[6], ARGV[i + 1])
    s = seq
    written = written + 1
  elseif seq > s + 1 then
    result = 'gap'
    break
  end
end
redis.call('hset', KEYS[2], 's', s)
if written > 0 then redis.call('pexpire', KEYS[1], ARGV[4]) end
redis.call('pexpire', KEYS[2], ARGV[5])
return {result, tostring(s)}
"""

# KEYS: owner; ARGV: value, ttl ms. Renew only a lease that is still ours.
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: owner; ARGV: value. Give a lease up only if it is ours.
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
