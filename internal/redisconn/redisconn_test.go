package redisconn

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	o, err := Parse("redis://u:pw@127.0.0.1:6380/3?dial_timeout=3")
	if err != nil || o.Mode != Single || o.Single.Addr != "127.0.0.1:6380" || o.Single.DB != 3 ||
		o.Single.Password != "pw" || o.Single.DialTimeout != 3*time.Second {
		t.Fatalf("single: %+v %v", o, err)
	}

	o, err = Parse("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001,node3/?read_timeout=2s&addr=10.0.0.4:7003")
	if err != nil || o.Mode != Cluster || o.Cluster.Password != "pw" || o.Cluster.ReadTimeout != 2*time.Second ||
		!slices.Equal(o.Cluster.Addrs, []string{"10.0.0.1:7000", "10.0.0.4:7003", "10.0.0.2:7001", "node3:6379"}) {
		t.Fatalf("cluster: %+v %v", o, err)
	}
	if o, err := Parse("rediss+cluster://[::1]:7000"); err != nil || o.Cluster.TLSConfig == nil || !slices.Equal(o.Cluster.Addrs, []string{"[::1]:7000"}) {
		t.Fatalf("tls cluster: %+v %v", o, err)
	}

	o, err = Parse("redis+sentinel://app:secret@s1:26379,s2:26380/mymaster/2?sentinel_password=sp&pool_size=7")
	if err != nil || o.Mode != Sentinel {
		t.Fatalf("sentinel: %v", err)
	}
	f := o.Failover
	if f.MasterName != "mymaster" || f.DB != 2 || f.Username != "app" || f.Password != "secret" ||
		f.SentinelPassword != "sp" || f.PoolSize != 7 || !slices.Equal(f.SentinelAddrs, []string{"s1:26379", "s2:26380"}) {
		t.Fatalf("sentinel: %+v", f)
	}
	if o, err := Parse("redis+sentinel://s1:26379/m?password=pw"); err != nil || o.Failover.DB != 0 || o.Failover.SentinelPassword != "" ||
		o.Failover.Password != "pw" {
		t.Fatalf("sentinel, no db: %+v %v", o, err)
	}

	o, _ = Parse("redis+cluster://h:1?dial_timeout=5s")
	o.SetTimeouts(time.Second, 2*time.Second, 3*time.Second)
	if o.Cluster.DialTimeout != 5*time.Second || o.Cluster.ReadTimeout != 2*time.Second || o.Cluster.WriteTimeout != 3*time.Second {
		t.Fatalf("SetTimeouts overrode the URL or set nothing: %+v", o.Cluster)
	}
}

func TestParseRejects(t *testing.T) {
	for _, raw := range []string{
		"127.0.0.1:6379",
		"http://h:1",
		"redis+shard://h:1",
		"redis+cluster://",
		"redis+cluster://h:1/2",
		"redis+cluster://h:1?bogus=1",
		"redis+cluster://h:,k:2",
		"redis+cluster://h:x",
		"redis+sentinel://h:1",
		"redis+sentinel://h:1/m/x",
		"redis+sentinel://h:1/m/1/2",
		"redis://h:1/x",
		"redis+cluster://u:hunter2@h:1/2",
	} {
		_, err := Parse(raw)
		if err == nil {
			t.Errorf("%s: accepted", raw)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", raw, err)
		}
	}
}
