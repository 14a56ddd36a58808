package api

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// upTimeout bounds each ping of a scrape: a dependency that does not
// answer within it is down for the scrape, which must not hang.
const upTimeout = time.Second

var (
	databaseUpDesc = prometheus.NewDesc("apiwallet_database_up",
		"1 if the database answered a ping at this scrape, 0 if not.", nil, nil)
	redisUpDesc = prometheus.NewDesc("apiwallet_redis_up",
		"1 if Redis answered a ping at this scrape, 0 if not; absent when REDIS_URL is not set.", nil, nil)
)

// upCollector pings the database and Redis at each scrape, both at once,
// each within upTimeout.
type upCollector struct {
	db, redis Pinger
}

func (c *upCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- databaseUpDesc
	if c.redis != nil {
		ch <- redisUpDesc
	}
}

func (c *upCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	up := func(p Pinger) float64 {
		if p == nil || p.Ping(ctx) != nil {
			return 0
		}
		return 1
	}
	var wg sync.WaitGroup
	var dbUp, redisUp float64
	wg.Go(func() { dbUp = up(c.db) })
	if c.redis != nil {
		wg.Go(func() { redisUp = up(c.redis) })
	}
	wg.Wait()
	ch <- prometheus.MustNewConstMetric(databaseUpDesc, prometheus.GaugeValue, dbUp)
	if c.redis != nil {
		ch <- prometheus.MustNewConstMetric(redisUpDesc, prometheus.GaugeValue, redisUp)
	}
}
