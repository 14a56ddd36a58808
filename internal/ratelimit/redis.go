package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript is gcra (limiter.go) in Lua, in microseconds, on the Redis
// server's clock. A bucket is one string key holding its TAT in
// microseconds since the Unix epoch, expiring (PX, in milliseconds rounded
// up) when the bucket is full again.
//
// Lua numbers are doubles: microseconds since the epoch (~2^51) are exact,
// nanoseconds would not be. Numbers passed to redis.call are formatted with
// %.14g, which would round the TAT, hence string.format('%d').
//
// KEYS[1] the bucket; ARGV[1] emission interval (µs); ARGV[2] burst; ARGV[3] n.
// Returns {allowed (0/1), remaining, resetAfter µs, retryAfter µs}.
const gcraScript = `
if redis.replicate_commands then redis.replicate_commands() end -- Redis < 5: allow TIME before a write
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local tolerance = interval * burst
local nxt = tat + interval * n
local allowAt = nxt - tolerance
if allowAt > now then
  return {0, math.floor((tolerance - (tat - now)) / interval), tat - now, allowAt - now}
end
if n > 0 then
  redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', string.format('%d', math.ceil((nxt - now) / 1000)))
end
return {1, math.floor((tolerance - (nxt - now)) / interval), nxt - now, 0}
`

var gcraLua = redis.NewScript(gcraScript)

// Redis is a GCRA limiter whose buckets live in Redis, so that any number of
// wallet instances sharing the Redis enforce one limit together. Each
// decision is one atomic script (EVALSHA, falling back to EVAL when the
// script is not cached yet), timed by the Redis server's clock so that
// instances whose clocks disagree still agree on the limit. Each bucket key
// expires (PX) when its bucket is full again.
//
// The script touches one key, KEYS[1], so it runs unchanged on a Redis
// Cluster (the client sends it to the key's node). A script that ever
// touches two keys must give them one hash tag, e.g. {workspace id}.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

// NewRedis returns a limiter storing bucket key under prefix+key.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
}

// Allow implements Limiter. Errors other than ErrInvalidLimit and
// ErrExceedsBurst come from Redis.
func (r *Redis) Allow(ctx context.Context, key string, l Limit, n int) (Decision, error) {
	burst, err := check(l, n)
	if err != nil {
		return Decision{}, err
	}
	t := interval(l, time.Microsecond)
	res, err := gcraLua.Run(ctx, r.client, []string{r.prefix + key}, t, burst, n).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if len(res) != 4 {
		return Decision{}, fmt.Errorf("ratelimit: redis: unexpected script result %v", res)
	}
	return Decision{
		Allowed:    res[0] == 1,
		Limit:      l.Rate,
		Remaining:  int(res[1]),
		ResetAfter: time.Duration(res[2]) * time.Microsecond,
		RetryAfter: time.Duration(res[3]) * time.Microsecond,
	}, nil
}

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	return r.client.Ping(ctx).Err()
}
