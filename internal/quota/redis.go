package quota

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyTTL is how long a month's counter lives after it is created: past the
// end of its month (at most 31 days later) with room for billing to read it.
const keyTTL = 40 * 24 * time.Hour

// reserveScript is one reservation, atomically on the Redis server.
//
// KEYS[1] the month's counter; ARGV[1] included; ARGV[2] hard stop (1/0);
// ARGV[3] the starting count to initialise a missing counter with, or an empty
// string to report a missing counter instead; ARGV[4] the counter's TTL (s).
// Returns {1, count after} when counted, {0, count} when refused by the
// hard stop, {-1, 0} when the counter is missing and ARGV[3] is empty.
const reserveScript = `
local v = redis.call('GET', KEYS[1])
if not v then
  if ARGV[3] == '' then return {-1, 0} end
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
  v = ARGV[3]
end
v = tonumber(v)
if ARGV[2] == '1' and v >= tonumber(ARGV[1]) then return {0, v} end
return {1, redis.call('INCR', KEYS[1])}
`

// refundScript takes one call back, never below zero and never creating a
// counter (an expired or lost one is re-initialised from the store).
const refundScript = `
local v = redis.call('GET', KEYS[1])
if v and tonumber(v) > 0 then return redis.call('DECR', KEYS[1]) end
return -1
`

// addScript adds ARGV[1] calls to an existing counter (Fallback's local
// counts when Redis returns); a missing one is left to be initialised
// from the store, which holds those calls' usage records.
const addScript = `
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return -1
`

var (
	reserveLua = redis.NewScript(reserveScript)
	refundLua  = redis.NewScript(refundScript)
	addLua     = redis.NewScript(addScript)
)

// redisError marks a failure to talk to Redis, as opposed to a refusal or
// a failure of the usage store: only these make Fallback count locally.
type redisError struct{ err error }

func (e *redisError) Error() string { return "quota: redis: " + e.err.Error() }
func (e *redisError) Unwrap() error { return e.err }

// IsRedisError reports whether err is a failure to reach Redis.
func IsRedisError(err error) bool {
	var re *redisError
	return errors.As(err, &re)
}

// Redis counts in Redis, so that any number of wallet instances share one
// count per workspace and month: the string key prefix+workspaceID+":"+
// YYYY-MM, expiring 40 days after it is created. Every decision is one
// atomic script (one round trip); the first reservation of a workspace in
// a month reads the month's count from the usage store and initialises the
// key with it (SET inside the script, so concurrent initialisers agree:
// the first one wins and the others count on top of it).
//
// Each script touches one key, KEYS[1], so they run unchanged on a Redis
// Cluster (the client sends each to its key's node). A script that ever
// touches two keys must give them one hash tag, e.g. {workspace id}.
type Redis struct {
	client redis.UniversalClient
	prefix string
	store  UsageStore
}

// NewRedis returns a counter storing its keys under prefix (the wallet uses
// "apiwallet:quota:") and initialising them from store.
func NewRedis(client redis.UniversalClient, prefix string, store UsageStore) *Redis {
	return &Redis{client: client, prefix: prefix, store: store}
}

// Key returns the Redis key counting workspaceID's calls in the month
// holding period.
func (r *Redis) Key(workspaceID string, period time.Time) string {
	return r.prefix + workspaceID + ":" + monthLabel(MonthStart(period))
}

// Reserve implements Counter: one script, plus once per workspace and month
// a usage store query and a second script.
func (r *Redis) Reserve(ctx context.Context, workspaceID string, period time.Time, included int64, hardStop bool) (Reservation, error) {
	period = MonthStart(period)
	key := r.Key(workspaceID, period)
	stop := "0"
	if hardStop {
		stop = "1"
	}
	ttl := strconv.FormatInt(int64(keyTTL/time.Second), 10)
	res, err := r.run(ctx, reserveLua, key, included, stop, "", ttl)
	if err != nil {
		return Reservation{}, err
	}
	if res[0] == -1 {
		n, err := storeCount(ctx, r.store, workspaceID, period)
		if err != nil {
			return Reservation{}, err
		}
		if res, err = r.run(ctx, reserveLua, key, included, stop, n, ttl); err != nil {
			return Reservation{}, err
		}
	}
	if res[0] == 0 {
		return Reservation{}, &Exceeded{Included: included, Used: res[1], ResetAt: NextMonth(period)}
	}
	return Reservation{WorkspaceID: workspaceID, Period: period, Included: included, HardStop: hardStop,
		Used: res[1], backend: inRedis}, nil
}

func (r *Redis) run(ctx context.Context, s *redis.Script, key string, args ...any) ([]int64, error) {
	res, err := s.Run(ctx, r.client, []string{key}, args...).Int64Slice()
	if err != nil {
		return nil, &redisError{err}
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("quota: redis: unexpected script result %v", res)
	}
	return res, nil
}

// Settle implements Counter: a refund is one script; keeping costs nothing.
func (r *Redis) Settle(ctx context.Context, res Reservation, happened bool) error {
	if happened || res.backend != inRedis {
		return nil
	}
	if err := refundLua.Run(ctx, r.client, []string{r.Key(res.WorkspaceID, res.Period)}).Err(); err != nil {
		return &redisError{err}
	}
	return nil
}

// Used implements Counter: the key's value, or the usage store's count when
// the month has no key yet.
func (r *Redis) Used(ctx context.Context, workspaceID string, period time.Time) (int64, error) {
	period = MonthStart(period)
	n, err := r.client.Get(ctx, r.Key(workspaceID, period)).Int64()
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, redis.Nil):
		return storeCount(ctx, r.store, workspaceID, period)
	default:
		return 0, &redisError{err}
	}
}

// add adds n calls to an existing counter.
func (r *Redis) add(ctx context.Context, workspaceID string, period time.Time, n int64) error {
	if err := addLua.Run(ctx, r.client, []string{r.Key(workspaceID, period)}, n).Err(); err != nil {
		return &redisError{err}
	}
	return nil
}

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	return r.client.Ping(ctx).Err()
}
