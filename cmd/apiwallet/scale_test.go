package main_test

// Scale-out on real processes: wallet instances whose REDIS_URL names a
// Redis Cluster or a master behind Sentinel share one rate limit and one
// monthly quota count, and a change made on one instance reaches the
// others' caches through Redis at once, not after the cache TTL.

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/testenv"
)

func TestScaleOutRedis(t *testing.T) {
	for _, d := range testenv.RedisDeployments[1:] { // the single server: multi_test.go
		t.Run(d.Name, func(t *testing.T) {
			redisURL := testenv.Require(t, d.Env)
			dsn := testenv.PostgresURL(t)
			stub := newStub(t)
			const limit = 40
			c := startCluster(t, 2, "DATABASE_URL="+dsn, "REDIS_URL="+redisURL, "APIWALLET_INSTANCES=2",
				"MAX_REQUESTS_PER_MINUTE="+strconv.Itoa(limit), "OPENAI_BASE_URL="+stub.URL)
			for _, w := range c.wallets {
				if !w.waitLog(fmt.Sprintf(`"redis":%q`, d.Name)) {
					t.Fatalf("the instance does not say it uses a redis %s:\n%s", d.Name, w.Logs())
				}
			}
			c.setup()

			// One limit over both instances.
			out, took := c.burst(100)
			n := tally(out)
			t.Logf("redis %s: burst of 100 over 2 instances in %v: %d allowed, %d refused, %d errors",
				d.Name, took.Round(time.Millisecond), n[200], n[429], n[-1])
			if n[200]+n[429] != 100 {
				t.Fatalf("%d allowed and %d refused of 100", n[200], n[429])
			}
			wantBurst(t, "2 instances on redis "+d.Name, n[200], limit, took)

			// One monthly count, in the deployment's own key.
			rc := testenv.RedisUniversal(t, redisURL)
			key := "apiwallet:quota:" + c.ws + ":" + time.Now().UTC().Format("2006-01")
			t.Cleanup(func() { rc.Del(context.Background(), key) })
			if v, err := rc.Get(context.Background(), key).Int(); err != nil || v != n[200] {
				t.Fatalf("quota counter %s = %d, %v; want %d", key, v, err, n[200])
			}

			// A token revoked on instance 0 is refused by instance 1, whose
			// cache would hold it for 30 s without an invalidation.
			tok := c.must(201, "POST", c.wallets[0].url+"/tokens", c.jwt, map[string]any{"name": "short-lived", "services": []string{"openai"}})
			secret, id := tok["token"].(string), fmt.Sprint(tok["id"])
			other := c.wallets[1].url + "/proxy/stripe/v1/charges" // refused by scope: no limit is spent
			c.must(403, "GET", other, secret, nil)
			c.must(204, "DELETE", c.wallets[0].url+"/tokens/"+id, c.jwt, nil)
			revoked := time.Now()
			for {
				st, _, _, err := c.do("GET", other, secret, nil)
				if err == nil && st == 401 {
					break
				}
				if time.Since(revoked) > 10*time.Second {
					t.Fatalf("instance 1 still takes the revoked token 10 s later: %d %v", st, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("redis %s: instance 1 refused the token %v after instance 0 revoked it", d.Name, time.Since(revoked).Round(time.Millisecond))
		})
	}
}
