// Package redisconn opens the Redis that REDIS_URL names: one server, a
// Redis Cluster or a master watched by Redis Sentinel. Every form gives a
// redis.UniversalClient, which is all the limiter, the quota counter and
// cache invalidation use.
//
// The URL forms:
//
//	redis://[user:password@]host:port[/db][?options]
//	rediss://…                                          (TLS)
//	    one server, as go-redis's redis.ParseURL reads it.
//
//	redis+cluster://[user:password@]host:port[,host:port…][/][?options]
//	rediss+cluster://…                                  (TLS)
//	    a Redis Cluster; the listed nodes are seeds, the rest are found
//	    through CLUSTER SLOTS. A cluster has no numbered databases. The
//	    options are redis.ParseClusterURL's (addr=host:port adds a seed).
//
//	redis+sentinel://[user:password@]host:port[,host:port…]/master[/db][?options]
//	rediss+sentinel://…                                 (TLS to Redis and Sentinel)
//	    the master that the listed sentinels know as "master". user and
//	    password are the master's; sentinel_username and sentinel_password
//	    authenticate to the sentinels when they require it. The other
//	    options are redis.ParseFailoverURL's.
//
// Options such as dial_timeout, read_timeout and pool_size work in every
// form; an unknown option is an error.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mode is the kind of deployment a URL names.
type Mode string

// The modes.
const (
	Single   Mode = "single"
	Cluster  Mode = "cluster"
	Sentinel Mode = "sentinel"
)

// Options is a parsed REDIS_URL. Exactly the field of its Mode is set.
type Options struct {
	Mode     Mode
	Single   *redis.Options
	Cluster  *redis.ClusterOptions
	Failover *redis.FailoverOptions
}

// Parse reads one of the package's URL forms. Its errors never hold the
// URL's password.
func Parse(raw string) (*Options, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, errors.New("not a URL: want redis://, redis+cluster:// or redis+sentinel://")
	}
	base, mode, _ := strings.Cut(strings.ToLower(scheme), "+")
	if base != "redis" && base != "rediss" {
		return nil, fmt.Errorf("unknown scheme %q: want redis, rediss, redis+cluster or redis+sentinel", scheme)
	}
	switch Mode(mode) {
	case "":
		o, err := redis.ParseURL(base + "://" + rest)
		if err != nil {
			return nil, clean(err)
		}
		return &Options{Mode: Single, Single: o}, nil
	case Cluster, Sentinel:
	default:
		return nil, fmt.Errorf("unknown scheme %q: want redis, rediss, redis+cluster or redis+sentinel", scheme)
	}

	// go-redis names the first node in the authority and the others in
	// addr= parameters; this form lists them all in the authority, which
	// net/url does not parse.
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo, hostlist := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hostlist = authority[:i+1], authority[i+1:]
	}
	var hosts []string
	for h := range strings.SplitSeq(hostlist, ",") {
		if h == "" {
			continue
		}
		host, port, err := net.SplitHostPort(h)
		switch {
		case err != nil && strings.Contains(h, ":") && !strings.HasSuffix(h, "]"):
			return nil, fmt.Errorf("bad host:port %q", h)
		case err != nil:
			h = net.JoinHostPort(strings.Trim(h, "[]"), "6379") // go-redis's default port
		case host == "" || port == "":
			return nil, fmt.Errorf("bad host:port %q", h)
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%s:// names no host", scheme)
	}
	u, err := url.Parse(base + "://" + userinfo + hosts[0] + tail)
	if err != nil {
		return nil, clean(err)
	}
	if u.Fragment != "" {
		return nil, errors.New("a Redis URL has no #fragment")
	}
	q := u.Query()
	for _, h := range hosts[1:] {
		q.Add("addr", h)
	}

	if Mode(mode) == Cluster {
		if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
			return nil, fmt.Errorf("a Redis Cluster has only database 0 (the URL's path is /%s)", p)
		}
		u.Path, u.RawQuery = "", q.Encode()
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, clean(err)
		}
		return &Options{Mode: Cluster, Cluster: o}, nil
	}

	// Sentinel: /master[/db].
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if parts[0] == "" || len(parts) > 2 {
		return nil, errors.New("redis+sentinel:// needs the master's name as the path: redis+sentinel://host:port/master[/db]")
	}
	name, err := url.PathUnescape(parts[0])
	if err != nil {
		return nil, clean(err)
	}
	q.Set("master_name", name)
	if len(parts) == 2 {
		if _, err := strconv.Atoi(parts[1]); err != nil {
			return nil, fmt.Errorf("bad database number %q", parts[1])
		}
		q.Set("db", parts[1])
	}
	sentinelUser, sentinelPassword := q.Get("sentinel_username"), q.Get("sentinel_password")
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	// go-redis takes the URL's userinfo for the sentinels' credentials and
	// the master's from parameters; this form has it the other way round,
	// as the master's are the ones every deployment with auth sets.
	master := u.User
	u.User = nil
	if sentinelUser != "" || sentinelPassword != "" {
		u.User = url.UserPassword(sentinelUser, sentinelPassword)
	}
	u.Path, u.RawQuery = "", q.Encode()
	o, err := redis.ParseFailoverURL(u.String())
	if err != nil {
		return nil, clean(err)
	}
	if master != nil {
		o.Username = master.Username()
		o.Password, _ = master.Password()
	}
	return &Options{Mode: Sentinel, Failover: o}, nil
}

// clean drops a URL from err: url.Parse errors quote the whole input,
// password included.
func clean(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// SetTimeouts sets the dial, read and write timeouts the URL left unset.
func (o *Options) SetTimeouts(dial, read, write time.Duration) {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	switch o.Mode {
	case Single:
		set(&o.Single.DialTimeout, dial)
		set(&o.Single.ReadTimeout, read)
		set(&o.Single.WriteTimeout, write)
	case Cluster:
		set(&o.Cluster.DialTimeout, dial)
		set(&o.Cluster.ReadTimeout, read)
		set(&o.Cluster.WriteTimeout, write)
	case Sentinel:
		set(&o.Failover.DialTimeout, dial)
		set(&o.Failover.ReadTimeout, read)
		set(&o.Failover.WriteTimeout, write)
	}
}

// SetMaxRetries sets how often a failed command is retried (-1: never).
func (o *Options) SetMaxRetries(n int) {
	switch o.Mode {
	case Single:
		o.Single.MaxRetries = n
	case Cluster:
		o.Cluster.MaxRetries = n
	case Sentinel:
		o.Failover.MaxRetries = n
	}
}

// Addrs returns the addresses the URL names: the server, the cluster's
// seed nodes or the sentinels.
func (o *Options) Addrs() []string {
	switch o.Mode {
	case Cluster:
		return o.Cluster.Addrs
	case Sentinel:
		return o.Failover.SentinelAddrs
	default:
		return []string{o.Single.Addr}
	}
}

// NewClient returns a client for the deployment. It connects lazily.
func (o *Options) NewClient() redis.UniversalClient {
	switch o.Mode {
	case Cluster:
		return redis.NewClusterClient(o.Cluster)
	case Sentinel:
		return redis.NewFailoverClient(o.Failover)
	default:
		return redis.NewClient(o.Single)
	}
}

// ForEachNode runs fn on every server that holds keys of c: each master
// of a cluster, else c itself. Commands that act on a server's whole
// keyspace (SCAN, FLUSHDB, SCRIPT FLUSH) need it on a cluster.
func ForEachNode(ctx context.Context, c redis.UniversalClient, fn func(context.Context, redis.UniversalClient) error) error {
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return fn(ctx, n) })
	}
	return fn(ctx, c)
}
