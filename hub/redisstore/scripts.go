package redisstore

import "github.com/redis/rueidis"

// The store's operations are Lua scripts: each one runs atomically in Redis,
// which is what makes a publish (id, append, trim, notify) one step and a read
// one consistent snapshot, on every node at once.
//
// Numbers: Lua numbers are doubles. Message ids stay below 2^53, so they are
// exact, but Redis turns a Lua number into a command argument with "%.14g",
// which would round a 15-digit id. Every number that goes back into a command
// is therefore formatted with fmt() ("%d").
//
// Time: TTLs and the expiry scores of the index sets use Redis's own clock
// (TIME), the clock that also expires the keys, so nodes with skewed clocks
// agree on what has expired.

// luaLib is prepended to every script.
const luaLib = `
local function fmt(n) return string.format('%d', n) end

local function now_ms()
	local t = redis.call('TIME')
	return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- renew gives key ttl milliseconds to live; 0 means no expiry.
local function renew(key, ttl)
	if ttl > 0 then
		redis.call('PEXPIRE', key, fmt(ttl))
	else
		redis.call('PERSIST', key)
	end
end

-- deadline is the expiry score of an index entry renewed now.
local function deadline(now, ttl)
	if ttl > 0 then return fmt(now + ttl) end
	return '+inf'
end

-- prune looks at a few entries of an index whose score says they have
-- expired, drops those whose key (keyprefix .. member) is gone and re-scores
-- the others, so that indexes stay as small as what they index.
local function prune(index, keyprefix, now, limit)
	local due = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. fmt(now), 'LIMIT', 0, limit)
	for _, member in ipairs(due) do
		local pttl = redis.call('PTTL', keyprefix .. member)
		if pttl == -2 then
			redis.call('ZREM', index, member)
		elseif pttl == -1 then
			redis.call('ZADD', index, '+inf', member)
		else
			redis.call('ZADD', index, fmt(now + pttl), member)
		end
	end
end
`

// pruneLimit bounds the work a create or read spends on stale index entries.
const pruneLimit = "16"

// readChunk is how many messages of a channel a paged read fetches at a
// time.
const readChunk = "16"

// createChannel
// KEYS: ch, msgs, clients, channels, keys, keytimes
// ARGV: base, channel id, use_sessions (0/1), max_messages, channel ttl ms,
// max channels (0: no limit)
// Returns 1, 0 when the channel exists, or -1 when the hub holds max
// channels. Live channels are the index entries whose expiry score is not
// past: every call that renews a channel renews its entry too.
var createChannelScript = rueidis.NewLuaScript(luaLib + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now = now_ms()
local limit = tonumber(ARGV[6])
if limit > 0 and redis.call('ZCOUNT', KEYS[4], fmt(now), '+inf') >= limit then return -1 end
local ttl = tonumber(ARGV[5])
-- leftovers of a channel that expired key by key must not show through
redis.call('DEL', KEYS[2], KEYS[3], KEYS[5], KEYS[6])
redis.call('HSET', KEYS[1], 'use_sessions', ARGV[3], 'max_messages', ARGV[4])
renew(KEYS[1], ttl)
redis.call('ZADD', KEYS[4], deadline(now, ttl), ARGV[2])
prune(KEYS[4], ARGV[1] .. 'ch:', now, ` + pruneLimit + `)
return 1
`)

// deleteChannel
// KEYS: ch, msgs, clients, channels, keys, keytimes
// ARGV: channel id, events channel, publish command
// Returns 1, or 0 when there was no such channel.
var deleteChannelScript = rueidis.NewLuaScript(luaLib + `
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[5], KEYS[6])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call(ARGV[3], ARGV[2], 'd' .. ARGV[1])
return 1
`)

// publish
// KEYS: ch, msgs, clients, id, channels, keys, keytimes
// ARGV: channel id, encoded content, clock id, ts, channel ttl ms, events
// channel, publish command, idempotency key (empty: none), idempotency
// window ms, max idempotency keys, durable (1: the publish waits for
// replicas, see commit; 0: it is visible and notified at once)
// Returns {id, 0} with the new message id, {id, 1} with the id first
// published with the idempotency key when it was used within the window (and
// nothing is published), or -2 when the channel does not exist.
//
// The event carries the message, for the nodes' caches (cache.go):
// "m<id> <prev>\n<channel>\n<json>", where prev is the id of the channel's
// newest message before this one (0: none), which tells a node whether it
// holds every message of the channel before this one.
//
// A durable publish is neither notified nor visible to reads here: its event
// is "s" (stored) rather than "m", which a node caches without waking
// anyone, and the store waits for replicas (WAIT, on the connection that ran
// this) and then runs commit. A durable replay writes the id counter again, unchanged, so that
// the WAIT after it covers the first publish too, whichever connection ran
// that.
//
// The message JSON is built exactly as hub.AppendMessageJSON builds it, so
// that the publisher's copy and the stored one are the same bytes.
//
// A channel's idempotency keys are a hash, key -> message id, and a zset,
// key -> when it was used (Redis's clock, in microseconds, nudged past the
// newest entry so that the scores keep the order of the publishes even when
// the clock steps back), which orders them for forgetting the expired ones
// and the oldest over the limit. Both live as long as the window after the
// last keyed publish, and go with the channel.
var publishScript = rueidis.NewLuaScript(publishSource)

// publishSource is publish's source, which a durable publish sends in a
// pipeline with WAIT (see Store.publishDurably).
const publishSource = luaLib + `
local max = redis.call('HGET', KEYS[1], 'max_messages')
if not max then return -2 end
local key = ARGV[8]
local t = redis.call('TIME')
local nowus = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(nowus / 1000)
if key ~= '' then
	local stale = fmt(nowus - tonumber(ARGV[9]) * 1000)
	-- one HDEL each: unpack() of thousands of keys would overflow Lua's stack
	for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', stale)) do
		redis.call('HDEL', KEYS[6], old)
	end
	redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', stale)
	local seen = redis.call('HGET', KEYS[6], key)
	if seen then
		if ARGV[11] == '1' then redis.call('SET', KEYS[4], redis.call('GET', KEYS[4])) end
		return {tonumber(seen), 1}
	end
end
local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local prev = '0'
if #newest > 0 then prev = fmt(tonumber(newest[2])) end
local id = tonumber(redis.call('GET', KEYS[4]) or '0') + 1
local tick = tonumber(ARGV[3])
if tick > id then id = tick end
local ids = fmt(id)
redis.call('SET', KEYS[4], ids)
local json = '{"content":' .. ARGV[2] .. ',"id":' .. ids .. ',"ts":' .. ARGV[4] .. '}'
redis.call('ZADD', KEYS[2], ids, json)
redis.call('ZREMRANGEBYRANK', KEYS[2], '0', fmt(-(tonumber(max) + 1)))
local ttl = tonumber(ARGV[5])
renew(KEYS[1], ttl)
renew(KEYS[2], ttl)
renew(KEYS[3], ttl)
redis.call('ZADD', KEYS[5], deadline(now, ttl), ARGV[1])
if key ~= '' then
	redis.call('HSET', KEYS[6], key, ids)
	local newestKey = redis.call('ZRANGE', KEYS[7], -1, -1, 'WITHSCORES')
	local at = nowus
	if #newestKey > 0 and tonumber(newestKey[2]) >= at then at = tonumber(newestKey[2]) + 1 end
	redis.call('ZADD', KEYS[7], fmt(at), key)
	local over = redis.call('ZCARD', KEYS[7]) - tonumber(ARGV[10])
	if over > 0 then
		local oldest = redis.call('ZPOPMIN', KEYS[7], over)
		for i = 1, #oldest, 2 do redis.call('HDEL', KEYS[6], oldest[i]) end
	end
	redis.call('PEXPIRE', KEYS[6], ARGV[9])
	redis.call('PEXPIRE', KEYS[7], ARGV[9])
end
local event = ids .. ' ' .. prev .. '\n' .. ARGV[1] .. '\n' .. json
if ARGV[11] == '1' then
	redis.call(ARGV[7], ARGV[6], 's' .. event)
else
	redis.call(ARGV[7], ARGV[6], 'm' .. event)
end
return {id, 0}
`

// commit
// KEYS: visible
// ARGV: message id, events channel, publish command, channel id
// Makes a durable publish visible, once replicas have it: the visible id
// becomes the message's id unless it is past it already, and the channel's
// readers are notified. Replication keeps the primary's order, so replicas
// that have this message have every message with a lower id too: the
// visible id never uncovers a message they may lose. Its event is
// "c<id>\n<channel>". Returns 1.
var commitScript = rueidis.NewLuaScript(`
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
	redis.call('SET', KEYS[1], ARGV[1])
end
redis.call(ARGV[3], ARGV[2], 'c' .. ARGV[1] .. '\n' .. ARGV[4])
return 1
`)

// createClient
// KEYS: client, sessions
// ARGV: base, client id, session ttl ms, max clients (0: no limit)
// Returns 1, 0 when a live client with that id exists, or -1 when the hub
// holds max clients (counted as createChannel counts channels).
var createClientScript = rueidis.NewLuaScript(luaLib + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now = now_ms()
local limit = tonumber(ARGV[4])
if limit > 0 and redis.call('ZCOUNT', KEYS[2], fmt(now), '+inf') >= limit then return -1 end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
	redis.call('SET', KEYS[1], '1', 'PX', fmt(ttl))
else
	redis.call('SET', KEYS[1], '1')
end
redis.call('ZADD', KEYS[2], deadline(now, ttl), ARGV[2])
prune(KEYS[2], ARGV[1] .. 'client:', now, ` + pruneLimit + `)
return 1
`)

// read
// KEYS: id, client (any key when anonymous), sessions, channels, visible,
// then ch, msgs, clients for each requested channel
// ARGV: base, since, session ttl ms, channel ttl ms, client id (empty when
// anonymous), max bytes of messages (0: no limit), durable (1/0), then the
// requested channel ids
// Returns -3 for an unregistered client, -2 when no channel is readable,
// otherwise {last id, cut, i1, {json, score, ...}, meta1, i2, {...}, meta2,
// ...} where cut is 1 when the limit left messages out, i is the 0-based
// position of a readable channel in the request and meta is {the id of its
// newest message readers may see, of its newest message, use_sessions,
// max_messages} (0 for no message), with which a node caches the channel
// (cache.go).
//
// Durable (see publish and commit), the read sees messages up to the
// visible id, and last is that id, or since when since is past it: a
// failover may promote a replica that had the messages a reader was given
// but not the commit that showed them, and the reader must neither be sent
// back to read them again nor skip any. since is clamped to the id counter,
// which every message a reader may have been given is below.
//
// With a limit, the channels' messages are merged by id, oldest first, and
// taken while their JSON (plus a byte each) fits, at least one; each
// channel's are fetched readChunk at a time, as the merge reaches them, so
// a read fetches no more than its page and a chunk per channel. A read cut
// there returns the id of its last message as its last id (hub.ReadQuery).
var readScript = rueidis.NewLuaScript(luaLib + `
local client = ARGV[5]
local now = now_ms()
local sttl = tonumber(ARGV[3])
if client ~= '' then
	if redis.call('EXISTS', KEYS[2]) == 0 then return -3 end
	renew(KEYS[2], sttl)
	redis.call('ZADD', KEYS[3], deadline(now, sttl), client)
end
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local since = tonumber(ARGV[2])
if since > last then since = last end
local upto = '+inf'
if ARGV[7] == '1' then
	last = math.max(tonumber(redis.call('GET', KEYS[5]) or '0'), since)
	upto = fmt(last)
end
local from = '(' .. fmt(since)
local ttl = tonumber(ARGV[4])
local limit = tonumber(ARGV[6])
local readable = {}
for i = 8, #ARGV do
	local k = 5 + (i - 8) * 3
	local h = redis.call('HMGET', KEYS[k + 1], 'use_sessions', 'max_messages')
	local us = h[1]
	if us and (us == '0' or client ~= '') then
		renew(KEYS[k + 1], ttl)
		renew(KEYS[k + 2], ttl)
		if client ~= '' then
			redis.call('ZADD', KEYS[k + 3], deadline(now, sttl), client)
			prune(KEYS[k + 3], ARGV[1] .. 'client:', now, 4)
		end
		renew(KEYS[k + 3], ttl)
		redis.call('ZADD', KEYS[4], deadline(now, ttl), ARGV[i])
		readable[#readable + 1] = {idx = i - 8, key = KEYS[k + 2], us = us, max = h[2], buf = {}, pos = 1, offset = 0, done = false, taken = {}}
	end
end
if #readable == 0 then return -2 end
-- meta is what a node needs to cache the channel: its newest message
-- readers may see, its newest message, use_sessions and max_messages.
local function meta(c)
	local seen = redis.call('ZREVRANGEBYSCORE', c.key, upto, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
	local all = redis.call('ZRANGE', c.key, -1, -1, 'WITHSCORES')
	local head, newest = '0', '0'
	if #seen > 0 then head = seen[2] end
	if #all > 0 then newest = all[2] end
	return {head, newest, c.us, c.max}
end
local out = {fmt(last), 0}
if limit == 0 then
	for _, c in ipairs(readable) do
		out[#out + 1] = c.idx
		out[#out + 1] = redis.call('ZRANGEBYSCORE', c.key, from, upto, 'WITHSCORES')
		out[#out + 1] = meta(c)
	end
	return out
end
-- head says whether c has a message left, fetching its next chunk when
-- the one in hand is used up.
local function head(c)
	if c.pos > #c.buf and not c.done then
		c.buf = redis.call('ZRANGEBYSCORE', c.key, from, upto, 'WITHSCORES', 'LIMIT', fmt(c.offset), ` + readChunk + `)
		c.pos = 1
		c.offset = c.offset + #c.buf / 2
		c.done = #c.buf < 2 * ` + readChunk + `
	end
	return c.pos <= #c.buf
end
local size, count, cut, lastTaken = 0, 0, false, nil
while true do
	local nxt = nil
	for _, c in ipairs(readable) do
		if head(c) and (nxt == nil or tonumber(c.buf[c.pos + 1]) < tonumber(nxt.buf[nxt.pos + 1])) then
			nxt = c
		end
	end
	if nxt == nil then break end
	local json, score = nxt.buf[nxt.pos], nxt.buf[nxt.pos + 1]
	if count > 0 and size + #json + 1 > limit then
		cut = true
		break
	end
	size, count, lastTaken = size + #json + 1, count + 1, score
	nxt.taken[#nxt.taken + 1] = json
	nxt.taken[#nxt.taken + 1] = score
	nxt.pos = nxt.pos + 2
end
if cut then out[1], out[2] = fmt(tonumber(lastTaken)), 1 end
for _, c in ipairs(readable) do
	out[#out + 1] = c.idx
	out[#out + 1] = c.taken
	out[#out + 1] = meta(c)
end
return out
`)

// touch
// KEYS: channels, sessions, then ch, msgs, clients for each channel, then
// client for each client
// ARGV: channel ttl ms, session ttl ms, number of channels, base, then for
// each channel its id, the number of clients to record as its readers and
// their ids, then the client ids
// Renews the channels and the clients that exist, records the readers of
// the channels (as a read does) and returns {{channel ids}, {client ids}}
// of those that do not exist.
var touchScript = rueidis.NewLuaScript(luaLib + `
local now = now_ms()
local ttl = tonumber(ARGV[1])
local sttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local base = ARGV[4]
local goneChannels, goneClients = {}, {}
local a = 5
for i = 1, n do
	local k = 2 + (i - 1) * 3
	local id, readers = ARGV[a], tonumber(ARGV[a + 1])
	a = a + 2
	if redis.call('EXISTS', KEYS[k + 1]) == 1 then
		for j = a, a + readers - 1 do
			redis.call('ZADD', KEYS[k + 3], deadline(now, sttl), ARGV[j])
		end
		if readers > 0 then prune(KEYS[k + 3], base .. 'client:', now, 4) end
		renew(KEYS[k + 1], ttl)
		renew(KEYS[k + 2], ttl)
		renew(KEYS[k + 3], ttl)
		redis.call('ZADD', KEYS[1], deadline(now, ttl), id)
	else
		goneChannels[#goneChannels + 1] = id
	end
	a = a + readers
end
local key = 2 + n * 3
for i = a, #ARGV do
	key = key + 1
	if redis.call('EXISTS', KEYS[key]) == 1 then
		renew(KEYS[key], sttl)
		redis.call('ZADD', KEYS[2], deadline(now, sttl), ARGV[i])
	else
		goneClients[#goneClients + 1] = ARGV[i]
	end
end
return {goneChannels, goneClients}
`)

// status
// KEYS: channels, sessions
// ARGV: base, list limit, readers per channel, readers limit
// Returns {{{id, use_sessions, max_messages, messages_count, {clients...},
// clients_count}...}, {clients...}, {channels_count, clients_count}}: up to
// limit live channels and clients (by their index entries' expiry scores,
// which every renewal keeps up to date), each channel with up to readers
// per channel of its live readers while the readers limit lasts, and the
// live counts, dropping up to limit index entries whose keys have expired
// on the way. Its cost grows with the limits, not with the hub.
var statusScript = rueidis.NewLuaScript(luaLib + `
local base = ARGV[1]
local limit = ARGV[2]
local nowms = now_ms()
local now = fmt(nowms)
-- drop up to limit stale entries of each index on the way
prune(KEYS[1], base .. 'ch:', nowms, tonumber(limit))
prune(KEYS[2], base .. 'client:', nowms, tonumber(limit))
local per_channel = tonumber(ARGV[3])
local readers_left = tonumber(ARGV[4])
local channels = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf', 'LIMIT', '0', limit)) do
	local h = redis.call('HMGET', base .. 'ch:' .. id, 'use_sessions', 'max_messages')
	if h[1] then
		local rkey = base .. 'clients:' .. id
		local readers = {}
		local n = math.min(per_channel, readers_left)
		if n > 0 then
			readers = redis.call('ZRANGEBYSCORE', rkey, now, '+inf', 'LIMIT', '0', n)
			readers_left = readers_left - #readers
		end
		channels[#channels + 1] = {id, h[1], h[2], redis.call('ZCARD', base .. 'msgs:' .. id), readers,
			redis.call('ZCOUNT', rkey, now, '+inf')}
	end
end
local clients = redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf', 'LIMIT', '0', limit)
return {channels, clients, {redis.call('ZCOUNT', KEYS[1], now, '+inf'), redis.call('ZCOUNT', KEYS[2], now, '+inf')}}
`)

// counts
// KEYS: channels, sessions
// Returns {channels_count, clients_count}: the index entries whose expiry
// score is not past, in O(log n).
var countsScript = rueidis.NewLuaScript(luaLib + `
local now = fmt(now_ms())
return {redis.call('ZCOUNT', KEYS[1], now, '+inf'), redis.call('ZCOUNT', KEYS[2], now, '+inf')}
`)

// ping
// KEYS: id
// Returns 1 and touches nothing. It is a script, with one of the hub's keys,
// so that the health probe goes where the store's calls go (the hub's slot
// on Cluster, the master under Sentinel) and needs no permission they do not
// (a PING or EXISTS might be outside an ACL user's commands).
var pingScript = rueidis.NewLuaScript(`return 1`)
