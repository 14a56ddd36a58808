package alerts

import (
	"crypto/hmac"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzVerify checks the alert webhook's signature parser with arbitrary
// X-Wallet-Signature headers and bodies. SIGN in the header is replaced
// with a valid signature of the body, so that headers that mix a valid
// part with garbage are tried too. The property: no panic; Verify accepts
// only a header with a t within the tolerance and a v1 that is the
// HMAC of that t and the body; what Sign makes is always accepted.
func FuzzVerify(f *testing.F) {
	for _, s := range []string{"SIGN", "", "t=1", "v1=00", "t=,v1=", "t=abc,v1=SIGN", "SIGN,v1=zz", "v1=zz,SIGN",
		"SIGN,t=1", "t=1,SIGN", " SIGN ", "SIGN,,", "t=+1767225600,v1=00", "t=9223372036854775807,v1=00",
		"t=-9223372036854775808,v1=00", "T=1767225600,V1=00", "t=1767225600;v1=00"} {
		f.Add(s, []byte(`{"id":"alt_1","type":"alert"}`))
	}
	secret := []byte("whsec_alerts_fuzz")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const tolerance = 5 * time.Minute
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		good := Sign(secret, now, body)
		if err := Verify(good, body, secret, tolerance, now); err != nil {
			t.Fatalf("Verify refused what Sign made: %v", err)
		}
		header = strings.ReplaceAll(header, "SIGN", good)
		if Verify(header, body, secret, tolerance, now) != nil {
			return
		}
		var ts string
		var sigs []string
		for _, part := range strings.Split(header, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			switch k {
			case "t":
				ts = v
			case "v1":
				sigs = append(sigs, v)
			}
		}
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > tolerance {
			t.Fatalf("Verify accepted %q: t out of range", header)
		}
		want := mac(secret, ts, body)
		for _, s := range sigs {
			if b, err := hex.DecodeString(s); err == nil && hmac.Equal(b, want) {
				return
			}
		}
		t.Fatalf("Verify accepted %q without a valid v1", header)
	})
}
