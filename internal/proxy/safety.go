package proxy

import (
	"net/http"
	"net/url"
	"strings"
)

// hopHeaders are meaningful only for one connection and never forwarded
// (RFC 9110 section 7.6.1), in either direction.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// clientOnlyHeaders never reach the upstream: the client's credentials for
// the wallet, the wallet's own controls, and what would leak the client's
// address (the upstream's client is the wallet).
var clientOnlyHeaders = map[string]bool{
	"Authorization": true, "Cookie": true, "X-Api-Key": true, "Host": true,
	"X-Workspace-Id": true, "X-Forwarded-For": true, "X-Forwarded-Host": true,
	"X-Forwarded-Proto": true, "Forwarded": true, "X-Real-Ip": true,
}

// copyRequestHeaders copies the client's headers that may be forwarded.
// extra names one more header to drop: the one the service takes its key
// in, where the client may have put its wallet credential.
func copyRequestHeaders(dst, src http.Header, extra string) {
	conn := connectionTokens(src)
	for k, vv := range src {
		if clientOnlyHeaders[k] || isHop(k) || conn[k] || strings.HasPrefix(k, "X-Wallet-") ||
			(extra != "" && strings.EqualFold(k, extra)) {
			continue
		}
		dst[k] = vv
	}
}

// copyResponseHeaders copies the upstream's headers that may reach the
// client. Set-Cookie is dropped: the wallet's origin must not collect an
// upstream's cookies.
func copyResponseHeaders(dst, src http.Header) {
	conn := connectionTokens(src)
	for k, vv := range src {
		if isHop(k) || conn[k] || k == "Set-Cookie" || k == "Set-Cookie2" {
			continue
		}
		dst[k] = vv
	}
}

func isHop(k string) bool {
	for _, h := range hopHeaders {
		if k == h {
			return true
		}
	}
	return false
}

// connectionTokens are the extra hop-by-hop headers a Connection header
// names.
func connectionTokens(h http.Header) map[string]bool {
	vv := h["Connection"]
	if len(vv) == 0 {
		return nil
	}
	m := map[string]bool{}
	for _, v := range vv {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				m[http.CanonicalHeaderKey(f)] = true
			}
		}
	}
	return m
}

// safePath checks the path the client asked for below the service's base
// URL, in its escaped form, and returns it decoded and escaped. It refuses
// anything that could step outside the base path or smuggle another
// request: dot segments (plain or encoded), encoded slashes and
// backslashes, NUL and control characters, and empty segments.
func safePath(escaped string) (decoded, reescaped string, ok bool) {
	if escaped == "" {
		return "", "", true
	}
	if escaped[0] != '/' {
		return "", "", false
	}
	lower := strings.ToLower(escaped)
	for _, bad := range []string{"%2e", "%2f", "%5c", "%00", "%0d", "%0a", "%09", "\\", "//", "%25"} {
		if strings.Contains(lower, bad) {
			return "", "", false
		}
	}
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return "", "", false
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." {
			return "", "", false
		}
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return "", "", false
		}
	}
	u := url.URL{Path: p}
	return p, u.EscapedPath(), true
}

// safeEndpoint checks the endpoint of a POST /proxy body: a path, never a
// URL. It returns the path and query.
func safeEndpoint(endpoint string) (escapedPath, rawQuery string, ok bool) {
	if endpoint == "" || endpoint[0] != '/' || strings.HasPrefix(endpoint, "//") ||
		strings.ContainsAny(endpoint, "\r\n\t\\ ") || strings.Contains(endpoint, "#") {
		return "", "", false
	}
	u, err := url.ParseRequestURI(endpoint)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", "", false
	}
	if _, p, ok := safePath(u.EscapedPath()); ok {
		return p, u.RawQuery, true
	}
	return "", "", false
}
