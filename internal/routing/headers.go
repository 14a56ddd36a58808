package routing

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Rate-limit header families, by canonical key (http.Header keys as
// net/http stores them), each a remaining count and its reset.
var allowanceHeaders = [...]struct{ remaining, reset string }{
	// IETF draft-ietf-httpapi-ratelimit-headers (up to -06): reset in
	// delta seconds.
	{"Ratelimit-Remaining", "Ratelimit-Reset"},
	// The de-facto X- family (GitHub, Stripe-likes...): reset in delta
	// seconds or as a Unix epoch, told apart by size.
	{"X-Ratelimit-Remaining", "X-Ratelimit-Reset"},
	{"X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"},
	// OpenAI: reset as a Go-like duration ("1s", "6m0s", "20ms").
	{"X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests"},
	{"X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens"},
	// Anthropic: reset as an RFC 3339 time.
	{"Anthropic-Ratelimit-Requests-Remaining", "Anthropic-Ratelimit-Requests-Reset"},
	{"Anthropic-Ratelimit-Tokens-Remaining", "Anthropic-Ratelimit-Tokens-Reset"},
}

// Structured forms of the IETF draft: "RateLimit: limit=10, remaining=0,
// reset=30" (-03 to -06) and `RateLimit: "default";r=0;t=30` (-07 on).
const headerRateLimit = "Ratelimit"

func first(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// exhaustedUntil returns when the allowance the upstream announced in h
// comes back, if some family says none is left (remaining 0); with several,
// the latest reset wins, since the key must wait for all of them. A
// remaining of 0 without a usable reset means DefaultAllowanceWait.
func exhaustedUntil(h http.Header, now time.Time) (time.Time, bool) {
	var until time.Time
	found := false
	note := func(t time.Time) {
		if !found || t.After(until) {
			until = t
		}
		found = true
	}
	for _, f := range allowanceHeaders {
		v := first(h, f.remaining)
		if v == "" {
			continue
		}
		if n, ok := parseCount(v); !ok || n > 0 {
			continue
		}
		t, ok := parseReset(first(h, f.reset), now)
		if !ok {
			t = now.Add(DefaultAllowanceWait)
		}
		note(t)
	}
	if v := first(h, headerRateLimit); v != "" {
		if t, ok := parseRateLimitField(v, now); ok {
			note(t)
		}
	}
	return until, found
}

// parseCount reads a count such as "0", "42" or "0;w=60" (a parameter
// list after the number is ignored).
func parseCount(v string) (int64, bool) {
	if i := strings.IndexAny(v, ";, "); i >= 0 {
		v = v[:i]
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, true
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return int64(f), true
	}
	return 0, false
}

// Epoch thresholds: a reset number this large is a Unix time, not a
// delay (1e9 s is 2001-09-09; no window lasts 31 years).
const (
	epochSeconds = 1e9
	epochMillis  = 1e12
)

// parseReset reads a reset time in any of the forms upstreams use: delta
// seconds ("30", "1.5"), a Unix epoch in seconds or milliseconds, a
// duration ("1s", "6m0s", "20ms", "1h2m", "2d3h"), an RFC 3339 time or an
// HTTP date. The result is clamped to [now, now+MaxCooldown].
func parseReset(v string, now time.Time) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	var t time.Time
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		switch {
		case f >= epochMillis:
			t = time.UnixMilli(int64(f))
		case f >= epochSeconds:
			t = time.Unix(int64(f), int64((f-float64(int64(f)))*1e9))
		default:
			t = now.Add(time.Duration(f * float64(time.Second)))
		}
	} else if d, ok := parseDuration(v); ok {
		t = now.Add(d)
	} else if pt, err := time.Parse(time.RFC3339, v); err == nil {
		t = pt
	} else if pt, err := http.ParseTime(v); err == nil {
		t = pt
	} else {
		return time.Time{}, false
	}
	return clampTime(t, now), true
}

// parseDuration reads a Go duration with an optional leading day count,
// as OpenAI writes resets ("6m0s", "20ms", "1d2h").
func parseDuration(v string) (time.Duration, bool) {
	var days time.Duration
	if i := strings.IndexByte(v, 'd'); i > 0 {
		n, err := strconv.Atoi(v[:i])
		if err != nil || n < 0 {
			return 0, false
		}
		days, v = time.Duration(n)*24*time.Hour, v[i+1:]
		if v == "" {
			return days, true
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, false
	}
	return days + d, true
}

// parseRetryAfter reads Retry-After: delay-seconds or an HTTP date
// (RFC 9110 §10.2.3), clamped to [now, now+MaxCooldown].
func parseRetryAfter(v string, now time.Time) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return time.Time{}, false
		}
		if n > int64(MaxCooldown/time.Second) {
			n = int64(MaxCooldown / time.Second)
		}
		return now.Add(time.Duration(n) * time.Second), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return clampTime(t, now), true
	}
	return time.Time{}, false
}

// parseRateLimitField reads the structured RateLimit field of the IETF
// draft in either generation and returns when the allowance comes back if
// some policy has none left.
func parseRateLimitField(v string, now time.Time) (time.Time, bool) {
	var until time.Time
	found := false
	// -03..-06 dictionary: one policy spread over comma-separated members.
	oldRem, oldReset := "", ""
	for item := range strings.SplitSeq(v, ",") {
		rem, reset := "", ""
		for param := range strings.SplitSeq(item, ";") {
			k, val, ok := strings.Cut(strings.TrimSpace(param), "=")
			if !ok {
				continue
			}
			switch strings.ToLower(k) {
			case "r":
				rem = val
			case "t":
				reset = val
			case "remaining":
				oldRem = val
			case "reset":
				oldReset = val
			}
		}
		if rem == "" {
			continue
		}
		if n, ok := parseCount(rem); ok && n <= 0 {
			t, ok := parseReset(reset, now)
			if !ok {
				t = now.Add(DefaultAllowanceWait)
			}
			if !found || t.After(until) {
				until = t
			}
			found = true
		}
	}
	if oldRem != "" {
		if n, ok := parseCount(oldRem); ok && n <= 0 {
			t, ok := parseReset(oldReset, now)
			if !ok {
				t = now.Add(DefaultAllowanceWait)
			}
			if !found || t.After(until) {
				until = t
			}
			found = true
		}
	}
	return until, found
}

func clampTime(t, now time.Time) time.Time {
	if t.Before(now) {
		return now
	}
	if maxT := now.Add(MaxCooldown); t.After(maxT) {
		return maxT
	}
	return t
}
