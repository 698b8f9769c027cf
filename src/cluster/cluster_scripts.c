/*
 * cluster_scripts.c — the Lua sources.  See cluster_scripts.h for the keys.
 *
 * Times come from Redis (TIME), never from the nodes, so liveness does not
 * depend on the nodes' clocks agreeing.  Numbers are formatted with
 * %.0f: Lua 5.1's tostring() would print 1e+15.
 */
#include "freshcache/base/assert.h"
#include "cluster_scripts.h"

#define NOW                                                                    \
    "local t = redis.call('TIME')\n"                                           \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* KEYS: gen events run nodes inst info acks:self
 * ARGV: node instance run-candidate live-ms info [field value]...
 * -> {'dup', ms-since-seen} when another live process uses the node name,
 *    else {'ok', run, {field, value...}, events-last-id,
 *          events-max-deleted-id, acks-last-id}
 * Raising the cluster's numbers to this node's first is what keeps a
 * generation from going backwards when Redis lost its data. */
static const char sync_lua[] =
    NOW
    "local holder = redis.call('HGET', KEYS[5], ARGV[1])\n"
    "if holder and holder ~= ARGV[2] then\n"
    "  local seen = redis.call('ZSCORE', KEYS[4], ARGV[1])\n"
    "  if seen and now - tonumber(seen) < tonumber(ARGV[4]) then\n"
    "    return {'dup', string.format('%.0f', now - tonumber(seen))}\n"
    "  end\n"
    "end\n"
    "local run = redis.call('GET', KEYS[3])\n"
    "if not run then\n"
    "  run = ARGV[3]\n"
    "  redis.call('SET', KEYS[3], run)\n"
    "end\n"
    "for i = 6, #ARGV, 2 do\n"
    "  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')\n"
    "  if tonumber(ARGV[i + 1]) > cur then\n"
    "    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])\n"
    "redis.call('HSET', KEYS[6], ARGV[1], ARGV[5])\n"
    "redis.call('ZADD', KEYS[4], now, ARGV[1])\n"
    "local function ids(key)\n"
    "  local info = redis.pcall('XINFO', 'STREAM', key)\n"
    "  local last, deleted = '0-0', '0-0'\n"
    "  if type(info) ~= 'table' or info.err then return last, deleted end\n"
    "  for i = 1, #info, 2 do\n"
    "    if info[i] == 'last-generated-id' then last = info[i + 1] end\n"
    "    if info[i] == 'max-deleted-entry-id' then deleted = info[i + 1] end\n"
    "  end\n"
    "  return last, deleted\n"
    "end\n"
    "local elast, edel = ids(KEYS[2])\n"
    "local alast = ids(KEYS[7])\n"
    "return {'ok', run, redis.call('HGETALL', KEYS[1]), elast, edel, alast}\n";

/* KEYS: nodes info inst   ARGV: node instance info forget-ms
 * -> {now, node, last-seen, info, node, last-seen, info, ...}
 * Nodes not heard from for forget-ms are forgotten. */
static const char heartbeat_lua[] =
    NOW
    "redis.call('ZADD', KEYS[1], now, ARGV[1])\n"
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])\n"
    "redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])\n"
    "local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[4]))\n"
    "for _, n in ipairs(old) do\n"
    "  redis.call('ZREM', KEYS[1], n)\n"
    "  redis.call('HDEL', KEYS[2], n)\n"
    "  redis.call('HDEL', KEYS[3], n)\n"
    "end\n"
    "local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')\n"
    "local out = {string.format('%.0f', now)}\n"
    "for i = 1, #all, 2 do\n"
    "  out[#out + 1] = all[i]\n"
    "  out[#out + 1] = all[i + 1]\n"
    "  out[#out + 1] = redis.call('HGET', KEYS[2], all[i]) or ''\n"
    "end\n"
    "return out\n";

/* KEYS: gen events nodes
 * ARGV: node kind arg soft floor maxlen live-ms
 * kind: g (global generation), p (policy generation; arg = policy),
 *       u (url), x (prefix), t (tag)
 * -> {event-id, new-generation, previous, {live nodes}}
 * The bump is max(what Redis holds, the highest this node has seen) + 1,
 * and the event is in the stream in the same step: no node can see the
 * number without the event, nor the event without the number. */
static const char purge_lua[] =
    NOW
    "local gen, prev = '', ''\n"
    "if ARGV[2] == 'g' or ARGV[2] == 'p' then\n"
    "  local field = 'global'\n"
    "  if ARGV[2] == 'p' then field = 'policy:' .. ARGV[3] end\n"
    "  local cur = tonumber(redis.call('HGET', KEYS[1], field) or '0')\n"
    "  local p = math.max(cur, tonumber(ARGV[5]))\n"
    "  gen = string.format('%.0f', p + 1)\n"
    "  prev = string.format('%.0f', p)\n"
    "  redis.call('HSET', KEYS[1], field, gen)\n"
    "end\n"
    "local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'o', ARGV[1],\n"
    "  'k', ARGV[2], 'a', ARGV[3], 's', ARGV[4], 'g', gen, 't', string.format('%.0f', now))\n"
    "local live = redis.call('ZRANGEBYSCORE', KEYS[3], now - tonumber(ARGV[7]), '+inf')\n"
    "return {id, gen, prev, live}\n";

/* KEYS: acks:ORIGIN   ARGV: event-id node purged maxlen ttl-ms */
static const char ack_lua[] =
    "redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[1], 'n', ARGV[2],\n"
    "  'c', ARGV[3])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
    "return 1\n";

/* KEYS: nodes info inst   ARGV: node instance
 * Only if the name is still ours: a successor may already have it. */
static const char leave_lua[] =
    "if redis.call('HGET', KEYS[3], ARGV[1]) == ARGV[2] then\n"
    "  redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "  redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "  redis.call('HDEL', KEYS[3], ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

const char *cluster_script_source(enum cluster_script s)
{
    static const char *const sources[N_SCRIPTS] = {
        [SCRIPT_SYNC] = sync_lua,
        [SCRIPT_HEARTBEAT] = heartbeat_lua,
        [SCRIPT_PURGE] = purge_lua,
        [SCRIPT_ACK] = ack_lua,
        [SCRIPT_LEAVE] = leave_lua,
    };
    FC_ASSERT((unsigned)s < N_SCRIPTS);
    return sources[s];
}
