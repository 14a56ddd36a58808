package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServerSettings covers the port's settings: TLS, h2c, trusted
// proxies and the per-request deadlines.
func TestServerSettings(t *testing.T) {
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ReadTimeout != 60*time.Second || c.WriteTimeout != 30*time.Second || c.H2C || c.TLSCertFile != "" || c.TrustedProxies != nil {
		t.Errorf("defaults: read %v, write %v, h2c %v, tls %q, trusted %v", c.ReadTimeout, c.WriteTimeout, c.H2C, c.TLSCertFile, c.TrustedProxies)
	}

	c, err = Load([]string{"READ_TIMEOUT=2m", "WRITE_TIMEOUT=45s", "H2C=true",
		"TRUSTED_PROXIES= 10.0.0.0/8, 192.0.2.7,2001:db8::/32 ,::ffff:198.51.100.1, 172.16.5.4/12"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("198.51.100.1/32"), netip.MustParsePrefix("172.16.0.0/12")}
	if !slices.Equal(c.TrustedProxies, want) {
		t.Errorf("TrustedProxies %v, want %v", c.TrustedProxies, want)
	}
	if c.ReadTimeout != 2*time.Minute || c.WriteTimeout != 45*time.Second || !c.H2C {
		t.Errorf("read %v, write %v, h2c %v", c.ReadTimeout, c.WriteTimeout, c.H2C)
	}

	c, err = Load([]string{"TLS_CERT_FILE=/etc/wallet/cert.pem", "TLS_KEY_FILE=/etc/wallet/key.pem"})
	if err != nil || c.TLSCertFile != "/etc/wallet/cert.pem" || c.TLSKeyFile != "/etc/wallet/key.pem" {
		t.Errorf("TLS pair: %v %+v", err, c)
	}
}

// TestServerSettingsRefused: each mistake is named, all at once.
func TestServerSettingsRefused(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"TRUST_PROXY_HEADERS=true"}, "set TRUSTED_PROXIES"},
		{[]string{"TRUST_PROXY_HEADERS=false"}, "set TRUSTED_PROXIES"},
		{[]string{"TLS_CERT_FILE=/c.pem"}, "TLS_CERT_FILE and TLS_KEY_FILE go together"},
		{[]string{"TLS_KEY_FILE=/k.pem"}, "TLS_CERT_FILE and TLS_KEY_FILE go together"},
		{[]string{"TLS_CERT_FILE=/c.pem", "TLS_KEY_FILE=/k.pem", "H2C=true"}, "H2C is for plain HTTP"},
		{[]string{"TRUSTED_PROXIES=10.0.0.0/8,lb.internal"}, `TRUSTED_PROXIES must list IP addresses or CIDRs separated by commas, such as 10.0.0.0/8,192.0.2.7 (got "lb.internal")`},
		{[]string{"TRUSTED_PROXIES=10.0.0.0/33"}, "TRUSTED_PROXIES must list"},
		{[]string{"READ_TIMEOUT=0"}, "READ_TIMEOUT must be a positive duration"},
		{[]string{"WRITE_TIMEOUT=soon"}, "WRITE_TIMEOUT must be a positive duration"},
		{[]string{"H2C=maybe"}, "H2C must be true or false"},
	} {
		_, err := Load(tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.env, err, tc.want)
		}
	}
	_, err := Load([]string{"TRUST_PROXY_HEADERS=1", "TLS_KEY_FILE=/k.pem", "READ_TIMEOUT=x"})
	if probs, ok := err.(Problems); !ok || len(probs) != 3 {
		t.Errorf("three mistakes: %v", err)
	}
}
