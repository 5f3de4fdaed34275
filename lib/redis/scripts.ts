/**
 * The Lua scripts the Redis adapter runs with EVAL: the two that take, renew
 * and release a lease only on behalf of the instance whose token it holds,
 * the one that tells replay whether anything ever left the stream, and the
 * one that tells the tail whether anything it has not read did. Each
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

/**
 * Appends to the stream `KEYS[1]` (trimmed to about `ARGV[2]` entries) the
 * fields `ARGV[3..]`, only while token `ARGV[1]` holds the lease `KEYS[2]`;
 * answers the new id, or false when the lease is not the token's.
 */
export const FENCED_APPEND = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))`

/**
 * Appends to the stream `KEYS[1]` (trimmed to about `ARGV[2]` entries) the
 * fields `ARGV[3..]` unless the idempotency key's record `KEYS[2]` exists;
 * answers the id the key was first stored under, or the new id, which the
 * record then keeps for `ARGV[1]` milliseconds.
 */
export const IDEMPOTENT_APPEND = `
local first = redis.call('GET', KEYS[2])
if first then return first end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return id`

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

/** Compares two stream ids in a script: `before(a, b)` is true when `a` comes before `b`. */
const BEFORE = `
local function before (a, b)
  local ad = string.find(a, '-', 1, true)
  local bd = string.find(b, '-', 1, true)
  local am, as = tonumber(string.sub(a, 1, ad - 1)), tonumber(string.sub(a, ad + 1))
  local bm, bs = tonumber(string.sub(b, 1, bd - 1)), tonumber(string.sub(b, bd + 1))
  return am < bm or (am == bm and as < bs)
end`

/** Reads the stream `KEYS[1]`'s newest generated id, entries ever added, and length into locals (`0-0`, 0, 0 with no stream). */
const STREAM_INFO = `
local last, added, length = '0-0', 0, 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
    if info[i] == 'entries-added' then added = info[i + 1] end
    if info[i] == 'length' then length = info[i + 1] end
  end
end`

/**
 * Joins the epoch `KEYS[2]` of the stream `KEYS[1]`, setting it to `ARGV[1]`
 * when there is none; answers `{ epoch, newest, added }`: the epoch, the
 * id of the newest entry (`0-0` with none) and how many entries were ever
 * added, which is that entry's position in the stream's history.
 */
export const JOIN = `${STREAM_INFO}
redis.call('SET', KEYS[2], ARGV[1], 'NX')
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
return { redis.call('GET', KEYS[2]), newest and newest[1] or '0-0', added }`

/**
 * Whether the stream `KEYS[1]` still holds everything after the tail's last
 * id `ARGV[2]`, the entry at position `ARGV[3]` in its history, for the
 * instance in the epoch `ARGV[1]` (the value of `KEYS[2]`, which a flush or a
 * restart without persistence loses; `ARGV[4]` then becomes the new one).
 * Answers `{ verdict, epoch, head, position, newest, added }`: `ok` with head and position
 * as given when nothing was left unread; else `trimmed` (more entries were
 * trimmed than the tail had read) or `lost` (the epoch changed, or the stream
 * went back behind the last id), with where the tail reads on: after `head`,
 * an id no event ever had, just before the first entry after the last id
 * (an entry marking the gap is appended when there is none), so no id a
 * client held before the gap resumes past it. `newest` and `added` are the
 * stream's newest id and how many entries it was ever given, for the lag.
 */
export const CONTINUITY = `${BEFORE}${STREAM_INFO}
local epoch = redis.call('GET', KEYS[2])
local verdict = 'lost'
if epoch == ARGV[1] and not before(last, ARGV[2]) then
  if added - length <= tonumber(ARGV[3]) then return { 'ok', epoch, ARGV[2], tonumber(ARGV[3]), last, added } end
  verdict = 'trimmed'
end
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[2], epoch)
end
local after = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], '+')
if #after == 0 then
  local marker = redis.call('XADD', KEYS[1], '*', 'gap', '1')
  return { verdict, epoch, marker, added + 1, marker, added + 1 }
end
local first = after[1][1]
local dash = string.find(first, '-', 1, true)
local ms, seq = tonumber(string.sub(first, 1, dash - 1)), tonumber(string.sub(first, dash + 1))
local head = seq > 0 and string.format('%.0f-%.0f', ms, seq - 1) or string.format('%.0f-999999999', ms - 1)
return { verdict, epoch, head, added - #after, last, added }`

/**
 * Create-or-follow for a resumable stream: `follow` when its recording
 * (`KEYS[1]`) or its producer's claim (`KEYS[2]`) exists; else, when
 * `ARGV[3]` is `'1'`, claims it for token `ARGV[1]` for `ARGV[2]` ms and
 * answers `produce`; else `unknown`.
 */
export const CLAIM = `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 'follow' end
if ARGV[3] ~= '1' then return 'unknown' end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 'produce'`

/**
 * Records event `ARGV[2]` (its frame `ARGV[3]`) in the recording `KEYS[1]`,
 * kept `ARGV[4]` ms, only while token `ARGV[1]` holds the claim `KEYS[2]`
 * (`lost` otherwise) and no cancel (`KEYS[3]`) was asked (`cancelled`).
 */
export const RECORD = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'lost' end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'cancelled' end
redis.call('XADD', KEYS[1], ARGV[2] .. '-0', 'f', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 'ok'`

/** Renews the claim `KEYS[1]` for `ARGV[2]` ms while token `ARGV[1]` holds it (`lost` otherwise); says `cancelled` when `KEYS[2]` asks. */
export const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lost' end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then return 'cancelled' end
return 'ok'`

/**
 * While token `ARGV[1]` holds the claim `KEYS[2]`: records how the stream
 * ended (`ARGV[2]`) as the recording's last entry, keeps it `ARGV[3]` ms,
 * and drops the claim and any cancel (`KEYS[3]`).
 */
export const FINISH = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[1], '*', 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2], KEYS[3])
return 1`

/** Asks the producer holding the claim `KEYS[1]` to stop (`KEYS[2]`, kept `ARGV[1]` ms); 1 when one holds it. */
export const CANCEL = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return 1`

/** The entries of the recording `KEYS[1]` from `ARGV[1]` (`(n-0`: after event n), at most `ARGV[2]`, and whether the claim `KEYS[2]` is held. */
export const READ = `
return { redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2]), redis.call('EXISTS', KEYS[2]) }`

/** Milliseconds since the epoch by Redis's clock, in a script. */
const NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)`

/**
 * Replaces an instance's presence counts: the hash `KEYS[2]` becomes the
 * `channel, count` pairs `ARGV[3..]`, kept `ARGV[2]` ms, and the instance
 * `ARGV[1]` is listed in `KEYS[1]` until then.
 */
export const PRESENCE_REPORT = `${NOW}
redis.call('DEL', KEYS[2])
if #ARGV > 2 then
  redis.call('HSET', KEYS[2], unpack(ARGV, 3))
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1`

/**
 * The streams on channel `ARGV[2]` across the instances listed in `KEYS[1]`
 * whose counts have not expired (their hashes at `ARGV[1] .. instance`); the
 * expired are dropped from the list.
 */
export const PRESENCE_COUNT = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local total = 0
for _, instance in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  total = total + tonumber(redis.call('HGET', ARGV[1] .. instance, ARGV[2]) or 0)
end
return total`
