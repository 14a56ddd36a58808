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
		if k == "Accept-Encoding" {
			if vv = acceptEncoding(vv); vv == nil {
				continue
			}
		}
		dst[k] = vv
	}
}

// acceptEncoding keeps, of the client's Accept-Encoding, the codings the
// wallet can read (gzip, identity): an upstream error body must be
// readable for an echo of the key in it to be masked. nil: none is left,
// send none (identity).
func acceptEncoding(vv []string) []string {
	if len(vv) == 1 && (vv[0] == "gzip" || vv[0] == "identity") {
		return vv // the common case, Go's and most SDKs' clients
	}
	var keep []string
	for _, v := range vv {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			name, _, _ := strings.Cut(f, ";")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "gzip", "x-gzip", "identity":
				keep = append(keep, f)
			}
		}
	}
	if len(keep) == 0 {
		return nil
	}
	return []string{strings.Join(keep, ", ")}
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
