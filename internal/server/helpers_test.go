package server

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/config"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// running is a Server serving on a loopback port.
type running struct {
	*Server
	addr string
	logs *testenv.LogBuffer
	errc chan error
}

// start builds a Server from the configuration env gives (the way
// `apiwallet serve` builds its own), lets tune adjust it before it serves
// (tests shorten the timeouts), and serves h on a loopback port.
func start(t *testing.T, h http.Handler, env []string, tune func(*Server)) *running {
	t.Helper()
	return startConfig(t, loadConfig(t, env...), h, tune)
}

func loadConfig(t *testing.T, env ...string) *config.Config {
	t.Helper()
	cfg, err := config.Load(append([]string{"APIWALLET_DATA_DIR=" + t.TempDir()}, env...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startConfig(t *testing.T, cfg *config.Config, h http.Handler, tune func(*Server)) *running {
	t.Helper()
	logs := &testenv.LogBuffer{}
	s, err := New(cfg, h, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &running{Server: s, addr: ln.Addr().String(), logs: logs, errc: make(chan error, 1)}
	go func() { r.errc <- s.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Close()
		select {
		case err := <-r.errc:
			if !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve = %v, want http.ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return within 5s of Close")
		}
	})
	return r
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// roundTrip writes raw and reads one response with its body.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write request: %v", err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res, string(body)
}

// waitClosed reads until the server ends the connection and returns what
// it sent meanwhile; it fails if the connection is still open after
// within.
func waitClosed(t *testing.T, c net.Conn, r io.Reader, within time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	data, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed by the server: %v (read %q)", err, data)
	}
	return string(data)
}

var certWrites atomic.Int64

// writeCert writes a fresh self-signed ECDSA certificate for localhost and
// 127.0.0.1, and its key, to certFile and keyFile. Nothing with a private
// key is kept in the repository: every test makes its own.
func writeCert(t *testing.T, certFile, keyFile, name string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Written beside and renamed, as a renewal tool does, so that a
	// handshake never reads half a file.
	for _, f := range []struct {
		path  string
		block *pem.Block
	}{{certFile, &pem.Block{Type: "CERTIFICATE", Bytes: der}}, {keyFile, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}}} {
		tmp := f.path + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(f.block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
		// A renewal a moment after the last write must still show in the
		// files' times, whatever the file system's clock granularity.
		mt := time.Now().Add(time.Duration(certWrites.Add(1)) * time.Second)
		if err := os.Chtimes(f.path, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// tlsEnv makes a certificate pair in a temporary directory and returns the
// environment that serves it, and a pool that trusts it.
func tlsEnv(t *testing.T) (env []string, certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert := writeCert(t, certFile, keyFile, "wallet-a")
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return []string{"TLS_CERT_FILE=" + certFile, "TLS_KEY_FILE=" + keyFile}, certFile, keyFile, pool
}

// h2Client speaks HTTP/2 over TLS to a server whose certificate pool
// trusts.
func h2Client(t *testing.T, pool *x509.CertPool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

var discard = slog.New(slog.DiscardHandler)
