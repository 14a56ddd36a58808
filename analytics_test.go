package apiwallet_test

import (
	"math"
	"strings"
	"testing"

	"github.com/apikeywallet/apiwallet"
)

// Endpoints are normalised so that ids never multiply the rollup's rows.
func TestUsageEndpoint(t *testing.T) {
	cases := []struct{ method, path, want string }{
		{"post", "/v1/charges", "POST /v1/charges"},
		{"GET", "/v1/customers/cus_NffrFeUfNV2Hib", "GET /v1/customers/{id}"},
		{"GET", "/v1/charges/ch_3MqLiX2eZvKYlo2C0Qe6ZtE1/refunds", "GET /v1/charges/{id}/refunds"},
		{"GET", "/users/12345", "GET /users/{id}"},
		{"DELETE", "/v1/files/file-abc123def456", "DELETE /v1/files/{id}"},
		{"GET", "/objects/550e8400-e29b-41d4-a716-446655440000", "GET /objects/{id}"},
		{"GET", "/blobs/9f86d081884c7d65", "GET /blobs/{id}"},
		{"GET", "/v1/facade", "GET /v1/facade"}, // a word, not an id
		{"GET", "/v1/models", "GET /v1/models"},
		{"GET", "/maps/api/geocode/json?address=Paris", "GET /maps/api/geocode/json"},
		{"GET", "/a/b/c/d/e/f", "GET /a/b/c/d/…"},
		{"GET", "/search/caf%C3%A9", "GET /search/{id}"},
		{"GET", "/", "GET /"},
		{"GET", "//v1//models/", "GET /v1/models"},
	}
	for _, c := range cases {
		if got := apiwallet.UsageEndpoint(c.method, c.path); got != c.want {
			t.Errorf("UsageEndpoint(%s, %s) = %q, want %q", c.method, c.path, got, c.want)
		}
	}
	long := apiwallet.UsageEndpoint("GET", "/"+strings.Repeat("abcdefg/", 4))
	if len(long) > 100 {
		t.Errorf("%d bytes", len(long))
	}
	if got := apiwallet.UsageEndpoint("GET", "/"+strings.Repeat("x", 30)+"/"+strings.Repeat("y", 20)+"/"+strings.Repeat("z", 20)+"/"+strings.Repeat("w", 20)); len(got) > 100 {
		t.Errorf("%q is %d bytes", got, len(got))
	}
}

// Every call has exactly one outcome class.
func TestUsageOutcome(t *testing.T) {
	cases := []struct {
		u    apiwallet.Usage
		want string
	}{
		{apiwallet.Usage{Status: 200, KeyID: "k"}, apiwallet.CallOutcomeSuccess},
		{apiwallet.Usage{Status: 404, KeyID: "k"}, apiwallet.CallOutcomeClient},
		{apiwallet.Usage{Status: 429, KeyID: "k", Failed: true}, apiwallet.CallOutcomeClient},
		{apiwallet.Usage{Status: 500, KeyID: "k", Failed: true}, apiwallet.CallOutcomeServer},
		{apiwallet.Usage{Status: 502, KeyID: "k", Failed: true, Attempted: "k:502"}, apiwallet.CallOutcomeServer},
		{apiwallet.Usage{Status: 502, KeyID: "k", Failed: true, Attempted: "k:network_error"}, apiwallet.CallOutcomeNetwork},
		{apiwallet.Usage{Status: 200, KeyID: "k", Failed: true}, apiwallet.CallOutcomeNetwork}, // stream broken
		{apiwallet.Usage{Status: 0, KeyID: "k", Failed: true}, apiwallet.CallOutcomeNetwork},
		{apiwallet.Usage{Status: 503, Failed: true}, apiwallet.CallOutcomeRefused},
		{apiwallet.Usage{Status: 502, KeyID: "k", Failed: true, Unreached: true}, apiwallet.CallOutcomeRefused},
	}
	for _, c := range cases {
		if got := apiwallet.UsageOutcome(&c.u); got != c.want {
			t.Errorf("UsageOutcome(%+v) = %s, want %s", c.u, got, c.want)
		}
	}
}

// A percentile from the histogram is within the stated bound (a factor
// √1.6) of the value it stands for.
func TestHistogramBound(t *testing.T) {
	for _, v := range []int64{1000, 1500, 7_777, 120_000, 999_999, 20_000_000} {
		var h apiwallet.Histogram
		h[apiwallet.Bucket(v, apiwallet.LatencyBaseMicros)]++
		got := h.Percentile(0.5, apiwallet.LatencyBaseMicros)
		if r := got / float64(v); r < 1/math.Sqrt(1.6)-1e-9 || r > math.Sqrt(1.6)+1e-9 {
			t.Errorf("%d µs reads as %.0f µs (ratio %.3f)", v, got, r)
		}
	}
	var empty apiwallet.Histogram
	if empty.Percentile(0.99, apiwallet.LatencyBaseMicros) != 0 {
		t.Error("an empty histogram has a percentile")
	}
}
