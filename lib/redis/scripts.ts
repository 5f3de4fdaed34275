/**
 * The Lua scripts the Redis adapter runs with EVAL: the two that take, renew
 * and release a lease only on behalf of the instance whose token it holds,
 * and the one that tells replay whether anything ever left the stream. Each
 * runs atomically in Redis, so no other instance can act between its reads
 * and its writes.
 */

/**
 * Takes the lease `KEYS[1]` for token `ARGV[1]` and `ARGV[2]` milliseconds
 * when it is free, renews it when that token still holds it; answers 1 when
 * the token holds it, else 0.
 */
export const TAKE_OR_RENEW = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`

/** Deletes the lease `KEYS[1]` only while token `ARGV[1]` still holds it (it may have expired and been taken). */
export const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

/**
 * How many entries left the stream `KEYS[1]` (trimmed or deleted); 0 when
 * there is no stream. XINFO answers a flat list inside a script, whatever
 * protocol the caller speaks.
 */
export const REMOVED = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local fields = {}
for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
return fields['entries-added'] - fields['length']`
