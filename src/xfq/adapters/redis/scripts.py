"""The Lua scripts that decide claims and move stock, each atomic on one shard's slot.

Every key a script touches carries the shard's hash tag (ARGV[1]); KEYS[1] is the shard's stream,
declared so that Redis Cluster routes the call to the node owning the slot. The `#!lua` shebang
makes Redis treat a script as a write up front: when writes are refused (out of memory, too few
replicas, a paused client) the whole call is refused before it changes anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# ARGV[2] is a JSON array of claims, each [now, person, key, type, eligible, voucher id,
# valid from, valid until] as strings (times in µs): one argument, since encoding thousands of
# arguments costs the client more than the script costs Redis.

# One call decides a batch of claims in order, each as if alone: the idempotency key first,
# then the checks of `xfq.domain.claim.decide_claim` in its order (window, eligibility, limits,
# stock), all before the claim's first write. Three writes per issued claim (stock, the person's
# hash with counts and answer, the stream): Redis's cost per claim is mostly its writes.
# Answers, one string each:
#   R|<stored answer>   a repeat of an issued key: type|voucher|at|from|until|remaining
#   U                   the type is not loaded in this shard
#   N|<opens_us>  C|<closes_us>  E
#   L|<of type>|<of category>|<of round>   S|<same counts>   I|<remaining in this shard>
CLAIM_BATCH = r"""#!lua
local tag = ARGV[1]
local stream = KEYS[1]

local function claim(now_s, person, key, tid, eligible, vid, vf, vu)
  local now = tonumber(now_s)
  local t = redis.call('HMGET', tag .. ':t:' .. tid, 'round', 'category', 'per_person')
  if not t[1] then return 'U' end
  local rid, cat, per_person = t[1], t[2], tonumber(t[3])
  local pkey = tag .. ':p:' .. person
  local fk, ft, fc, fr = 'k:' .. key, 't:' .. tid, 'c:' .. rid .. ':' .. cat, 'r:' .. rid
  local c = redis.call('HMGET', pkey, fk, ft, fc, fr)
  if c[1] then return 'R|' .. c[1] end
  local r = redis.call('HMGET', tag .. ':r:' .. rid, 'opens', 'closes', 'per_category', 'per_round')
  if now < tonumber(r[1]) then return 'N|' .. r[1] end
  if now >= tonumber(r[2]) then return 'C|' .. r[2] end
  if eligible ~= '1' then return 'E' end
  local of_type, of_cat, of_round = tonumber(c[2]) or 0, tonumber(c[3]) or 0, tonumber(c[4]) or 0
  local counts = of_type .. '|' .. of_cat .. '|' .. of_round
  local per_cat, per_round = tonumber(r[3]), tonumber(r[4])
  if of_type >= per_person or (per_cat >= 0 and of_cat >= per_cat)
     or (per_round >= 0 and of_round >= per_round) then
    return 'L|' .. counts
  end
  local skey = tag .. ':s:' .. tid
  if (tonumber(redis.call('GET', skey)) or 0) <= 0 then return 'S|' .. counts end
  local left = redis.call('DECR', skey)
  local answer = tid .. '|' .. vid .. '|' .. now_s .. '|' .. vf .. '|' .. vu .. '|' .. left
  redis.call('HSET', pkey, ft, of_type + 1, fc, of_cat + 1, fr, of_round + 1, fk, answer)
  redis.call('XADD', stream, '*', 'v', vid, 'p', person, 't', tid, 'k', key,
             'at', now_s, 'vf', vf, 'vu', vu)
  return 'I|' .. left
end

local out = {}
for i, c in ipairs(cjson.decode(ARGV[2])) do
  out[i] = claim(c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8])
end
return out
"""

# Take up to `want` of a type from this shard for another one; recorded in this shard's stream
# so that the persister completes the move (`BORROW`) if the lender's process dies before it.
LEND = r"""#!lua
local tag, tid, want, move_id, to = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local skey = tag .. ':s:' .. tid
local left = tonumber(redis.call('GET', skey)) or 0
local n = math.min(want, left)
if n <= 0 then return 0 end
redis.call('DECRBY', skey, n)
redis.call('XADD', KEYS[1], '*', 'm', move_id, 't', tid, 'n', n, 'to', to)
return n
"""

# Receive a move once, however often it is delivered: the set of moves received and the stock
# change together, so a retry whose first answer was lost finds its move there and adds nothing.
_RECEIVE = r"""#!lua
local tag, tid, n, move_id = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if redis.call('SADD', tag .. ':RECEIVED', move_id) == 0 then return 0 end
redis.call('INCRBY', tag .. ':s:' .. tid, n)
return 1
"""
BORROW = _RECEIVE.replace("RECEIVED", "moves")  # stock lent by another shard
TOP_UP = _RECEIVE.replace("RECEIVED", "rolled")  # stock a rollover added (see rollovers.py)

# Set the voucher counts Redis's stock is made for to those of an uploaded campaign, all or
# nothing, on the shard that holds the `counts` hash, the campaign's spec digest and the stock
# of raised counts and new types (the other shards' claims borrow from it). ARGV[2] is JSON:
#   types:  [[type, count, round, category], ...]  the whole uploaded campaign
#   seed:   [[type, count], ...]  the ledger's counts, for a Redis loaded before `counts` was
#           kept: a loaded type (its `t:` hash exists) gets its count from there, once
#   digest: the uploaded spec's sha256 ('' leaves the digest as it is)
# A count raised adds the difference to the stock, a new type its count; both are recorded in
# `counts` in the same atomic call, so the same upload sent again adds nothing. A count lowered
# takes the difference back from the unclaimed stock here. Answers the refusals, one string
# each, and changes nothing when there is one (an empty answer: applied):
#   R|<type>                                    a loaded type the upload leaves out
#   M|<type>|<round>|<category>                 a loaded type moved to another round or category
#   L|<type>|<count>|<wanted>|<unclaimed here>  lowered by more than the unclaimed stock here
#   X|<type>                                    loaded, but its count is known nowhere
SET_COUNTS = r"""#!lua
local tag = ARGV[1]
local req = cjson.decode(ARGV[2])
local counts = tag .. ':counts'
for _, s in ipairs(req.seed) do
  if redis.call('EXISTS', tag .. ':t:' .. s[1]) == 1 then
    redis.call('HSETNX', counts, s[1], s[2])
  end
end
local refused, wanted = {}, {}
for _, t in ipairs(req.types) do
  local tid, want = t[1], tonumber(t[2])
  wanted[tid] = true
  local was = redis.call('HMGET', tag .. ':t:' .. tid, 'round', 'category')
  local cur = tonumber(redis.call('HGET', counts, tid))
  if was[1] and (was[1] ~= t[3] or was[2] ~= t[4]) then
    refused[#refused + 1] = 'M|' .. tid .. '|' .. was[1] .. '|' .. was[2]
  elseif was[1] and not cur then
    refused[#refused + 1] = 'X|' .. tid
  elseif cur and want < cur then
    local left = tonumber(redis.call('GET', tag .. ':s:' .. tid)) or 0
    if cur - want > left then
      refused[#refused + 1] = 'L|' .. tid .. '|' .. cur .. '|' .. want .. '|' .. left
    end
  end
end
for _, tid in ipairs(redis.call('HKEYS', counts)) do
  if not wanted[tid] then refused[#refused + 1] = 'R|' .. tid end
end
if #refused > 0 then return refused end
for _, t in ipairs(req.types) do
  local want = tonumber(t[2])
  local cur = tonumber(redis.call('HGET', counts, t[1])) or 0
  if want ~= cur then
    redis.call('INCRBY', tag .. ':s:' .. t[1], want - cur)
    redis.call('HSET', counts, t[1], want)
  end
end
if req.digest ~= '' then redis.call('SET', tag .. ':spec', req.digest) end
return {}
"""


@dataclass(frozen=True)
class Script:
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


CLAIM_SCRIPT = Script(CLAIM_BATCH)
LEND_SCRIPT = Script(LEND)
BORROW_SCRIPT = Script(BORROW)
TOP_UP_SCRIPT = Script(TOP_UP)
SET_COUNTS_SCRIPT = Script(SET_COUNTS)
