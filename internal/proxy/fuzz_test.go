package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/catalog"
)

// The fuzz targets of the proxy's parsers of outside input: the path
// below a service, the POST /proxy form, the Host that names a service,
// the header filters and the key masking of relayed answers. Their seed
// corpora (f.Add and testdata/fuzz) run with every go test.

// pathSeeds are paths a client might send, honest and hostile.
var pathSeeds = []string{
	"", "/", "/v1/charges", "/v1/chat/completions", "/v1/customers/cus_123/sources",
	"/a%20b", "/%E2%82%AC", "/..", "/../etc/passwd", "/v1/../../admin", "/%2e%2e/admin", "/%2E%2e",
	"/.%2e/x", "/a/./b", "/a%2fb", "/a%5cb", "/a\\b", "//evil.example/x", "/a//b", "/%00", "/%0d%0aHost:x",
	"/%252e%252e/", "/a%", "/a%zz", "/\x7f", "/;/../x", "/a?b", "/a#b", "/..;/x", "/%u002e%u002e",
	"/.", "/a/..", "/a/.../b", "/~user", "/\u00ad..",
}

// checkSafePath is the path property: an accepted path is a clean path
// of segments below "/" (no dot segments, no empty segments, no
// backslashes or control characters), its re-escaped form means the same
// path, and checking it again changes nothing.
func checkSafePath(t *testing.T, escaped, decoded, reesc string) {
	t.Helper()
	if decoded == "" {
		if reesc != "" {
			t.Fatalf("safePath(%q): empty path re-escaped as %q", escaped, reesc)
		}
		return
	}
	if decoded[0] != '/' {
		t.Fatalf("safePath(%q) = %q: not absolute", escaped, decoded)
	}
	for _, seg := range strings.Split(decoded[1:], "/") {
		if seg == "." || seg == ".." {
			t.Fatalf("safePath(%q) = %q: dot segment", escaped, decoded)
		}
	}
	if strings.Contains(decoded[1:], "//") || strings.ContainsAny(decoded, "\\") {
		t.Fatalf("safePath(%q) = %q: empty segment or backslash", escaped, decoded)
	}
	for i := 0; i < len(decoded); i++ {
		if c := decoded[i]; c < 0x20 || c == 0x7f {
			t.Fatalf("safePath(%q) = %q: control character", escaped, decoded)
		}
	}
	if u, err := url.PathUnescape(reesc); err != nil || u != decoded {
		t.Fatalf("safePath(%q): re-escaped %q means %q (%v), not %q", escaped, reesc, u, err, decoded)
	}
	lower := strings.ToLower(reesc)
	for _, bad := range []string{"%2e", "%2f", "%5c", "%00", "?", "#"} {
		if strings.Contains(lower, bad) {
			t.Fatalf("safePath(%q): re-escaped %q contains %q", escaped, reesc, bad)
		}
	}
	d2, r2, ok := safePath(reesc)
	if !ok || d2 != decoded || r2 != reesc {
		t.Fatalf("safePath is not idempotent: %q -> %q -> (%q, %q, %v)", escaped, reesc, d2, r2, ok)
	}
	// Below any base path: cleaning the joined path never climbs out.
	const base = "/base/v1"
	if joined := path.Clean(base + decoded); joined != base && !strings.HasPrefix(joined, base+"/") {
		t.Fatalf("safePath(%q) = %q escapes %s: %s", escaped, decoded, base, joined)
	}
}

// FuzzSafePath checks the path normaliser of /proxy/{service}/... and of
// root-path calls.
func FuzzSafePath(f *testing.F) {
	for _, s := range pathSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, escaped string) {
		decoded, reesc, ok := safePath(escaped)
		if !ok {
			return
		}
		checkSafePath(t, escaped, decoded, reesc)
	})
}

// FuzzCallForm feeds arbitrary JSON to the POST /proxy form and, for an
// accepted one, builds the upstream request as the proxy does: its URL
// stays below the service's base path and keeps the form's meaning, and no
// header carries a line break.
func FuzzCallForm(f *testing.F) {
	for _, s := range []string{
		`{"service":"stripe","endpoint":"/v1/charges","method":"POST","body":{"amount":100}}`,
		`{"endpoint":"/v1/models"}`,
		`{"service":"openai","endpoint":"/v1/chat/completions","body":"raw text","headers":{"OpenAI-Beta":"x"}}`,
		`{"endpoint":"/v1/x?a=1&b=2","query":{"a":"3","c":"d&e=f"}}`,
		`{"endpoint":"http://evil.example/x"}`, `{"endpoint":"//evil.example/x"}`, `{"endpoint":"/../admin"}`,
		`{"endpoint":"/%2e%2e/admin"}`, `{"endpoint":"/x#frag"}`, `{"endpoint":"/x","method":"CONNECT"}`,
		`{"endpoint":"/x","method":" get "}`, `{"endpoint":"/x","headers":{"X-A":"1\r\nHost: evil"}}`,
		`{"endpoint":"/x","headers":{"Host":"evil.example","Authorization":"Bearer x"}}`,
		`{"endpoint":"/x","query":{"":"1"}}`, `{"endpoint":"/x?%zz"}`, `{"endpoint":"/x","body":null}`,
		`{"endpoint":"/a b"}`, `{"endpoint":"/x?q=\u0000"}`, `{"endpoint":"*"}`, `{"endpoint":"/x","headers":{"Te":"trailers"}}`,
	} {
		f.Add([]byte(s))
	}
	svc := catalog.Service{Name: "svc", BaseURL: "https://api.example.com/base",
		Auth: catalog.AuthScheme{Kind: catalog.AuthBearer}}
	p := &Proxy{}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Call
		if json.Unmarshal(data, &c) != nil {
			return
		}
		esc, rawQuery, err := c.Validate()
		if err != nil {
			var e *apiwallet.Error
			if !asError(err, &e) || e.Code != apiwallet.EINVALID {
				t.Fatalf("Validate: %v, want an EINVALID error", err)
			}
			return
		}
		if !slices.Contains(callMethods, c.Method) {
			t.Fatalf("accepted method %q", c.Method)
		}
		decoded, reesc, ok := safePath(esc)
		if !ok || reesc != esc {
			t.Fatalf("accepted endpoint %q as %q, which safePath gives back as (%q, %v)", c.Endpoint, esc, reesc, ok)
		}
		checkSafePath(t, esc, decoded, reesc)
		if _, err := url.ParseQuery(rawQuery); err != nil && len(c.Query) > 0 {
			t.Fatalf("merged query %q does not parse: %v", rawQuery, err)
		}
		for k, v := range c.Query {
			if q, _ := url.ParseQuery(rawQuery); q.Get(k) != v {
				t.Fatalf("query %q = %q in %q, want %q", k, q.Get(k), rawQuery, v)
			}
		}
		h := http.Header{}
		for k, v := range c.Headers {
			h.Set(k, v)
		}
		cl := &call{svc: svc, method: c.Method, escPath: esc, rawQuery: rawQuery, header: h}
		out := p.outbound(context.Background(), cl, []byte("sk_test_0123456789"))
		// What the upstream's server sees: the request line, parsed back.
		line := out.URL.RequestURI()
		if strings.ContainsAny(line, " \r\n#") {
			t.Fatalf("request target %q for endpoint %q", line, c.Endpoint)
		}
		got, err := url.ParseRequestURI(line)
		if err != nil {
			t.Fatalf("request target %q does not parse: %v", line, err)
		}
		if got.Path != "/base"+decoded {
			t.Fatalf("upstream path %q, want %q", got.Path, "/base"+decoded)
		}
		if clean := path.Clean(got.Path); clean != "/base" && !strings.HasPrefix(clean, "/base/") {
			t.Fatalf("upstream path %q escapes /base", got.Path)
		}
		if out.URL.Host != "api.example.com" || out.Host != "api.example.com" {
			t.Fatalf("upstream host %q/%q", out.URL.Host, out.Host)
		}
		for k, vv := range out.Header {
			for _, v := range vv {
				if strings.ContainsAny(k+v, "\r\n") {
					t.Fatalf("header %q: %q carries a line break", k, v)
				}
			}
		}
		if out.Header.Get("Authorization") != "Bearer sk_test_0123456789" || len(out.Header["Authorization"]) != 1 {
			t.Fatalf("Authorization %q, want the injected key alone", out.Header["Authorization"])
		}
		if _, ok := out.Header["Host"]; ok {
			t.Fatalf("a Host header from the form reached the upstream")
		}
	})
}

func asError(err error, target **apiwallet.Error) bool {
	e, ok := err.(*apiwallet.Error)
	*target = e
	return ok
}

// FuzzHostService checks root-path service resolution by Host: the
// service is a catalog entry named by the first label, or none.
func FuzzHostService(f *testing.F) {
	for _, s := range []string{"openai.wallet.example.com", "stripe.localhost:8080", "wallet.example.com",
		"openai", "openai.", ".openai.example", "OPENAI.wallet.example", "[::1]:8080", "openai.wallet:99999",
		"openai:80", "open ai.x", "openai%2e.x", "stripe.openai.example", "", ":", "anthropic.\x00"} {
		f.Add(s)
	}
	cat := catalog.New()
	f.Fuzz(func(t *testing.T, host string) {
		name := hostService(host, cat)
		if name == "" {
			return
		}
		if _, ok := cat.Get(name); !ok {
			t.Fatalf("hostService(%q) = %q, not in the catalog", host, name)
		}
		h := host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			h = hh
		}
		if !strings.HasPrefix(h, name+".") {
			t.Fatalf("hostService(%q) = %q, which is not its first label", host, name)
		}
	})
}

// forbiddenUpstream are the request headers that never reach an
// upstream, whatever their spelling.
var forbiddenUpstream = []string{"Authorization", "Cookie", "X-Api-Key", "Host", "X-Workspace-Id",
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Real-Ip",
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// readHeader parses a header block the way a server reads one off the
// wire; false when it is malformed (and the server would refuse it).
func readHeader(block string) (http.Header, bool) {
	if !strings.HasSuffix(block, "\r\n\r\n") {
		block += "\r\n\r\n"
	}
	h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(block))).ReadMIMEHeader()
	if err != nil {
		return nil, false
	}
	return http.Header(h), true
}

// FuzzHeaderFilter checks the header filters both ways: a request header
// block from a client loses the wallet's credentials and controls,
// hop-by-hop headers, those its Connection names and the service's own key
// header, and keeps the rest unchanged; a response header block from an
// upstream loses hop-by-hop headers and cookies.
func FuzzHeaderFilter(f *testing.F) {
	f.Add("Authorization: Bearer awk_x\r\nX-Api-Key: k\r\nContent-Type: application/json", "x-api-key")
	f.Add("Connection: close, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nTe: trailers", "")
	f.Add("Accept-Encoding: br, gzip;q=0.5, zstd\r\nX-Wallet-Strategy: cost\r\nX-Forwarded-For: 10.0.0.1", "x-goog-api-key")
	f.Add("Set-Cookie: a=b\r\nSet-Cookie2: c\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\nConnection: upgrade", "")
	f.Add("cOnNeCtIoN: x-a\r\nx-a: 1\r\nhost: evil\r\nproxy-authorization: Basic x", "anthropic-version")
	f.Add("Accept-Encoding: *\r\nAccept-Encoding: identity\r\nCookie: s=1\r\nForwarded: for=1.2.3.4", "")
	f.Add("X-Folded: a\r\n b\r\nAuthorization : x\r\nX\x00: y", "")
	f.Fuzz(func(t *testing.T, block, extra string) {
		src, ok := readHeader(block)
		if !ok {
			return
		}
		orig := src.Clone()
		conn := connectionTokens(src)
		dst := http.Header{}
		copyRequestHeaders(dst, src, extra)
		for k, vv := range dst {
			ck := http.CanonicalHeaderKey(k)
			for _, bad := range forbiddenUpstream {
				if strings.EqualFold(k, bad) {
					t.Fatalf("request header %q reached the upstream", k)
				}
			}
			if conn[ck] || strings.HasPrefix(ck, "X-Wallet-") || (extra != "" && strings.EqualFold(k, extra)) {
				t.Fatalf("request header %q reached the upstream", k)
			}
			if ck == "Accept-Encoding" {
				for _, v := range vv {
					for _, c := range strings.Split(v, ",") {
						name, _, _ := strings.Cut(c, ";")
						switch strings.ToLower(strings.TrimSpace(name)) {
						case "gzip", "x-gzip", "identity":
						default:
							t.Fatalf("Accept-Encoding %q reached the upstream", v)
						}
					}
				}
			} else if !slices.Equal(vv, orig[k]) {
				t.Fatalf("request header %q changed: %q -> %q", k, orig[k], vv)
			}
		}
		for k := range orig {
			_, kept := dst[k]
			dropped := slices.ContainsFunc(forbiddenUpstream, func(b string) bool { return strings.EqualFold(k, b) }) ||
				conn[k] || strings.HasPrefix(k, "X-Wallet-") || (extra != "" && strings.EqualFold(k, extra)) ||
				k == "Accept-Encoding"
			if !kept && !dropped {
				t.Fatalf("request header %q was dropped", k)
			}
		}
		if !equalHeaders(src, orig) {
			t.Fatalf("the client's headers were changed in place")
		}

		res := http.Header{}
		copyResponseHeaders(res, src)
		for k := range res {
			if isHop(k) || conn[k] || strings.EqualFold(k, "Set-Cookie") || strings.EqualFold(k, "Set-Cookie2") {
				t.Fatalf("response header %q reached the client", k)
			}
		}
	})
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// FuzzMaskBody checks the masking of a key echoed in an answer: however
// an upstream's body and header values place the key, and however the
// body is cut into pieces, the key never comes out, and the streaming
// masker gives what masking the whole body gives. The key is one the
// wallet would store (apiwallet.ValidateSecret).
func FuzzMaskBody(f *testing.F) {
	f.Add("sk_test_0123456789abcdef", []byte("invalid api key: sk_test_0123456789abcdef"), uint8(1), "Bearer sk_test_0123456789abcdef")
	f.Add("sk-proj-abcdefgh", []byte(`{"error":{"message":"Incorrect API key provided: sk-proj-abcdefghsk-proj-abcdefgh"}}`), uint8(7), "")
	f.Add("AIzaSyA-1234567890", []byte("key=AIzaSyA-1234567890&key=AIzaSyA-1234567890AIzaSyA-1234567890"), uint8(3), "x AIzaSyA-1234567890")
	f.Add("abcabcabcabc", []byte("abcabcabcabcabcabcabcabc"), uint8(2), "abcabcabcabcabc")
	f.Add("aaaaaaaaaaaa", []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), uint8(5), "aaaaaaaaaaaaaaaaaaa")
	f.Fuzz(func(t *testing.T, secret string, body []byte, piece uint8, header string) {
		var v apiwallet.ValidationError
		if apiwallet.ValidateSecret(&v, "key", secret); v.Err() != nil {
			return
		}
		masked := maskOf(secret)
		whole := maskAll(body, []byte(secret), []byte(masked))
		if bytes.Contains(whole, []byte(secret)) {
			t.Fatalf("masked body %q still holds the key %q", whole, secret)
		}
		size := int(piece)%64 + 1
		m := &maskStream{mask: []byte(secret), masked: []byte(masked)}
		var out bytes.Buffer
		for i := 0; i < len(body); i += size {
			out.Write(m.next(body[i:min(i+size, len(body))], false))
		}
		out.Write(m.next(nil, true))
		if bytes.Contains(out.Bytes(), []byte(secret)) {
			t.Fatalf("streamed in pieces of %d, the masked body %q still holds the key %q", size, out.Bytes(), secret)
		}
		h := http.Header{"X-Echo": {header, "ok"}, "Www-Authenticate": {"Bearer realm=" + header}}
		maskHeaders(h, secret, masked)
		for k, vv := range h {
			for _, hv := range vv {
				if strings.Contains(hv, secret) {
					t.Fatalf("header %s: %q still holds the key", k, hv)
				}
			}
		}
	})
}
