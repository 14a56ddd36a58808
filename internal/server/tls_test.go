package server

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

var protoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, r.Proto)
})

// TestTLS11Refused pins TLS 1.2 as the oldest version the port speaks.
func TestTLS11Refused(t *testing.T) {
	env, _, _, pool := tlsEnv(t)
	rs := start(t, protoHandler, env, nil)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		c, err := tls.Dial("tcp", rs.addr, &tls.Config{RootCAs: pool, MinVersion: v, MaxVersion: v})
		if err == nil {
			c.Close()
			t.Errorf("handshake at %s succeeded", tls.VersionName(v))
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c, err := tls.Dial("tcp", rs.addr, &tls.Config{RootCAs: pool, MinVersion: v, MaxVersion: v})
		if err != nil {
			t.Errorf("handshake at %s: %v", tls.VersionName(v), err)
			continue
		}
		c.Close()
	}
}

// TestHTTP2OverTLS: a client that offers HTTP/2 gets it, and one that
// offers only HTTP/1.1 is still served.
func TestHTTP2OverTLS(t *testing.T) {
	env, _, _, pool := tlsEnv(t)
	rs := start(t, protoHandler, env, nil)
	if !rs.TLS() || rs.H2C() {
		t.Fatalf("TLS %v, h2c %v", rs.TLS(), rs.H2C())
	}
	res, err := h2Client(t, pool).Get("https://" + rs.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 || string(body) != "HTTP/2.0" {
		t.Fatalf("client saw %s, handler %q; want HTTP/2 on both sides", res.Proto, body)
	}

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	defer tr.CloseIdleConnections()
	res, err = (&http.Client{Transport: tr}).Get("https://" + rs.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "HTTP/1.1" {
		t.Fatalf("HTTP/1.1-only client: handler saw %q", body)
	}
}

// TestCurlHTTP2 is what an operator checks by hand: curl --http2 over the
// port's TLS speaks HTTP/2.
func TestCurlHTTP2(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	env, _, _, _ := tlsEnv(t)
	rs := start(t, protoHandler, env, nil)
	_, port, _ := net.SplitHostPort(rs.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "--http2", "-k", "-sS", "-w", " %{http_version}", "https://localhost:"+port+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if string(out) != "HTTP/2.0 2" {
		t.Fatalf("curl printed %q, want the handler's HTTP/2.0 and curl's 2", out)
	}
}

// TestPlainHTTPToTLSPort: a client speaking plain HTTP to the HTTPS port
// is told so, not left hanging.
func TestPlainHTTPToTLSPort(t *testing.T) {
	env, _, _, _ := tlsEnv(t)
	rs := start(t, protoHandler, env, nil)
	res, err := http.Get("http://" + rs.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", res.StatusCode)
	}
}

// TestCertificateReload: a renewed pair is served without a restart, and
// a broken one leaves the last good pair in use.
func TestCertificateReload(t *testing.T) {
	env, certFile, keyFile, _ := tlsEnv(t)
	rs := start(t, protoHandler, env, func(s *Server) { s.certs.every = 0 })
	served := func() string {
		t.Helper()
		// The test trusts whatever it is served: it looks at which
		// certificate that is.
		c, err := tls.Dial("tcp", rs.addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "wallet-a" {
		t.Fatalf("served %q, want wallet-a", got)
	}
	writeCert(t, certFile, keyFile, "wallet-b")
	if got := served(); got != "wallet-b" {
		t.Fatalf("after renewal served %q, want wallet-b", got)
	}
	if !strings.Contains(rs.logs.String(), "TLS certificate reloaded") {
		t.Errorf("reload not logged: %s", rs.logs)
	}
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != "wallet-b" {
		t.Fatalf("with a broken file served %q, want wallet-b still", got)
	}
	if !strings.Contains(rs.logs.String(), `"level":"WARN","msg":"new TLS certificate files do not load`) {
		t.Errorf("broken pair not logged as a warning: %s", rs.logs)
	}
	// Fixed again: picked up again.
	writeCert(t, certFile, keyFile, "wallet-c")
	if got := served(); got != "wallet-c" {
		t.Fatalf("after the fix served %q, want wallet-c", got)
	}
}

// TestCertificateCheckedEveryFewSeconds: handshakes within the check
// interval do not look at the files.
func TestCertificateCheckedEveryFewSeconds(t *testing.T) {
	env, certFile, keyFile, _ := tlsEnv(t)
	cfg := loadConfig(t, env...)
	s, err := New(cfg, protoHandler, discard)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s.certs.now = func() time.Time { return now }
	writeCert(t, certFile, keyFile, "wallet-b")
	now = now.Add(certCheckInterval - time.Millisecond)
	if c, _ := s.certs.get(nil); c.Leaf.Subject.CommonName != "wallet-a" {
		t.Fatalf("files looked at before the interval: %s", c.Leaf.Subject.CommonName)
	}
	now = now.Add(time.Millisecond)
	if c, _ := s.certs.get(nil); c.Leaf.Subject.CommonName != "wallet-b" {
		t.Fatalf("files not looked at after the interval: %s", c.Leaf.Subject.CommonName)
	}
}

// TestBadPairFailsStart: a pair that does not load stops the start.
func TestBadPairFailsStart(t *testing.T) {
	env, certFile, _, _ := tlsEnv(t)
	if err := os.WriteFile(certFile, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(loadConfig(t, env...), protoHandler, discard); err == nil || !strings.Contains(err.Error(), "TLS_CERT_FILE") {
		t.Fatalf("New = %v, want an error naming TLS_CERT_FILE", err)
	}
}

// TestH2C: with H2C=true a client speaking HTTP/2 with prior knowledge
// over plain TCP (a TLS-terminating proxy in front) is served HTTP/2, and
// HTTP/1.1 clients still are; without it such a client is refused.
func TestH2C(t *testing.T) {
	h2c := func(t *testing.T) *http.Client {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	t.Run("on", func(t *testing.T) {
		rs := start(t, protoHandler, []string{"H2C=true"}, nil)
		res, err := h2c(t).Get("http://" + rs.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.ProtoMajor != 2 || string(body) != "HTTP/2.0" {
			t.Fatalf("client %s, handler %q", res.Proto, body)
		}
		res, err = http.Get("http://" + rs.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(res.Body)
		res.Body.Close()
		if string(body) != "HTTP/1.1" {
			t.Fatalf("HTTP/1.1 client beside h2c: %q", body)
		}
	})
	t.Run("off", func(t *testing.T) {
		rs := start(t, protoHandler, nil, nil)
		if res, err := h2c(t).Get("http://" + rs.addr + "/"); err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			t.Fatalf("h2c served without H2C=true: %s %q", res.Proto, body)
		}
	})
}
