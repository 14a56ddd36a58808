package config

import (
	"strings"
	"testing"
)

// TestScaleOutSettings covers REDIS_URL's three forms and DATABASE_READ_URL.
func TestScaleOutSettings(t *testing.T) {
	for _, u := range []string{"redis://127.0.0.1:6379/0", "rediss+cluster://h1:7000,h2:7001",
		"redis+sentinel://s1:26379,s2:26379/mymaster/0"} {
		if c, err := Load([]string{"REDIS_URL=" + u}); err != nil || c.RedisURL != u {
			t.Errorf("REDIS_URL=%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://h:1", "redis+cluster://h:1/3", "redis+sentinel://h:1", "redis://:hunter2@h:1/x"} {
		_, err := Load([]string{"REDIS_URL=" + u})
		if err == nil || !strings.Contains(err.Error(), "REDIS_URL") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("REDIS_URL=%s: %v", u, err)
		}
	}

	primary := "DATABASE_URL=postgres://wallet@db:5432/wallet"
	c, err := Load([]string{primary, "DATABASE_READ_URL=postgresql://wallet@replica:5432/wallet"})
	if err != nil || c.DatabaseReadURL != "postgresql://wallet@replica:5432/wallet" {
		t.Fatalf("DATABASE_READ_URL: %v %+v", err, c)
	}
	for _, env := range [][]string{
		{"DATABASE_READ_URL=postgres://wallet@replica/wallet"}, // SQLite has no replica
		{"DATABASE_URL=./wallet.db", "DATABASE_READ_URL=postgres://wallet@replica/wallet"},
		{primary, "DATABASE_READ_URL=./replica.db"},
		{primary, "DATABASE_READ_URL=mysql://replica/wallet"},
	} {
		if _, err := Load(env); err == nil || !strings.Contains(err.Error(), "DATABASE_READ_URL") {
			t.Errorf("%v: %v", env, err)
		}
	}
}
