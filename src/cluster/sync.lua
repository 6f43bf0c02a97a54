-- One sync of one sluice node (src/cluster/mod.rs builds the call).
-- KEYS[1]: the sorted set of live nodes; KEYS[2..]: one key per operation.
-- ARGV: now (unix ms), node name, node ttl (ms), then per operation its
-- type and arguments. Returns { live nodes, one reply per operation }.
-- Timestamps are the nodes' clocks (NTP-synced hosts assumed).
local now = tonumber(ARGV[1])
local node = ARGV[2]
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, node)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 10)
local out = { redis.call('ZCARD', KEYS[1]) }

-- Sum of the "value:time" fields of hash k still fresh (other nodes' only
-- when skip is given), deleting the stale ones.
local function fresh_sum(k, prefix, skip)
  local all = redis.call('HGETALL', k)
  local sum = 0
  for j = 1, #all, 2 do
    local f, v = all[j], all[j + 1]
    if string.sub(f, 1, #prefix) == prefix and f ~= skip then
      local c = string.find(v, ':', 1, true)
      if c and tonumber(string.sub(v, c + 1)) >= now - ttl then
        sum = sum + tonumber(string.sub(v, 1, c - 1))
      else
        redis.call('HDEL', k, f)
      end
    end
  end
  return sum
end

local a = 4
for i = 2, #KEYS do
  local k = KEYS[i]
  local t = ARGV[a]
  if t == 'r' then
    -- rate: this node's demand (milli-requests/s; 0: none any more)
    -- -> all nodes' demand
    if ARGV[a + 1] == '0' then
      redis.call('HDEL', k, node)
      out[#out + 1] = 0
    else
      redis.call('HSET', k, node, ARGV[a + 1] .. ':' .. now)
      redis.call('PEXPIRE', k, ttl)
      out[#out + 1] = fresh_sum(k, '', nil)
    end
    a = a + 2
  elseif t == 'c' then
    -- count: new requests, bucket width (ms), buckets in the window
    -- -> requests of all nodes within the window
    local diff, width, n = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    local b = math.floor(now / width)
    if diff > 0 then
      redis.call('HINCRBY', k, string.format('%d', b), diff)
    end
    redis.call('PEXPIRE', k, (n + 2) * width)
    local all = redis.call('HGETALL', k)
    local sum = 0
    for j = 1, #all, 2 do
      if tonumber(all[j]) > b - n then
        sum = sum + tonumber(all[j + 1])
      else
        redis.call('HDEL', k, all[j])
      end
    end
    out[#out + 1] = sum
    a = a + 4
  elseif t == 'b' then
    -- bytes: new bytes this period, period (ms) -> all nodes' bytes
    local diff, per = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local v
    if diff > 0 then
      v = redis.call('INCRBY', k, diff)
      redis.call('PEXPIRE', k, 2 * per)
    else
      v = tonumber(redis.call('GET', k) or '0')
    end
    out[#out + 1] = v
    a = a + 3
  elseif t == 'w' then
    -- waiting room: slots taken, interval (us), credit (us), sessions
    -- active here, now (us) -> { next slot (us), sessions elsewhere }
    local n, iv, credit = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    local active, now_us = ARGV[a + 4], tonumber(ARGV[a + 5])
    local nxt = tonumber(redis.call('HGET', k, 'next') or '0')
    if n > 0 then
      nxt = math.max(nxt, now_us - credit) + n * iv
      redis.call('HSET', k, 'next', string.format('%d', nxt))
    end
    redis.call('HSET', k, 'a:' .. node, active .. ':' .. now)
    redis.call('PEXPIRE', k, 86400000)
    out[#out + 1] = { nxt, fresh_sum(k, 'a:', 'a:' .. node) }
    a = a + 6
  else
    return redis.error_reply('sluice sync: unknown operation ' .. tostring(t))
  end
end
return out
