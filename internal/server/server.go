// Package server serves the wallet's port with net/http's server: HTTP/1.1,
// HTTP/2 over TLS (or h2c behind a TLS-terminating proxy), header and idle
// timeouts, and per-request read and write deadlines that a streamed
// answer can extend.
//
// The server deliberately has no ReadTimeout or WriteTimeout: those would
// end every stream at a fixed age. Instead each request gets deadlines
// through http.ResponseController, which the proxy pushes forward while
// bytes flow, so a stalled client is cut and a live stream is not.
package server

import (
	"context"
	"crypto/tls"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/apikeywallet/apiwallet/internal/config"
)

const (
	// readHeaderTimeout bounds a request's header, counted from the first
	// byte of a kept-alive connection's next request, or from accept: the
	// slowloris bound. For TLS it also bounds the handshake.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout is how long a kept-alive connection waits for its next
	// request.
	idleTimeout = 120 * time.Second
	// maxHeaderBytes bounds the request header (net/http adds 4 KiB for
	// the request line); a larger one is refused with 431.
	maxHeaderBytes = 64 << 10
)

// Server is the wallet's HTTP server on its port.
type Server struct {
	srv   *http.Server
	certs *certReloader // nil: plain HTTP
	h2c   bool
}

// New builds the server for cfg around h. With TLS_CERT_FILE and
// TLS_KEY_FILE it serves HTTPS and loads the pair now, so a bad pair fails
// the start rather than the first handshake.
func New(cfg *config.Config, h http.Handler, log *slog.Logger) (*Server, error) {
	s := &Server{h2c: cfg.H2C && cfg.TLSCertFile == ""}
	s.srv = &http.Server{
		Handler:           deadlines(cfg.ReadTimeout, cfg.WriteTimeout, h),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          newErrorLog(log),
		Protocols:         new(http.Protocols),
	}
	s.srv.Protocols.SetHTTP1(true)
	if cfg.TLSCertFile != "" {
		c, err := newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, log)
		if err != nil {
			return nil, err
		}
		s.certs = c
		s.srv.Protocols.SetHTTP2(true)
		s.srv.TLSConfig = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: c.get,
		}
	}
	if s.h2c {
		s.srv.Protocols.SetUnencryptedHTTP2(true)
	}
	return s, nil
}

// TLS reports whether the server speaks HTTPS.
func (s *Server) TLS() bool { return s.certs != nil }

// H2C reports whether the server speaks unencrypted HTTP/2.
func (s *Server) H2C() bool { return s.h2c }

// Serve serves ln until Shutdown or Close, when it returns
// http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	if s.certs != nil {
		// The certificate comes from TLSConfig.GetCertificate; ServeTLS
		// adds HTTP/2 to the offered protocols.
		return s.srv.ServeTLS(ln, "", "")
	}
	return s.srv.Serve(ln)
}

// Shutdown stops accepting, closes idle connections and waits for the
// requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// Close drops every connection at once.
func (s *Server) Close() error { return s.srv.Close() }

// deadlines gives each request its read and write deadlines. The read
// deadline is set only for a request with a body. For one without, net/http
// is already reading the connection in the background (to notice a client
// that hangs up), and a read deadline passing there cancels the request's
// context in the middle of a long answer; for one with a body, that
// background read starts when the body has been read, and lifts the
// deadline as it does.
func deadlines(read, write time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PRI" && r.RequestURI == "*" {
			// HTTP/2's connection preface on a port without h2c:
			// net/http passes it on as a request, which no handler
			// should take for a call.
			w.Header().Set("Connection", "close")
			http.Error(w, "HTTP/2 needs TLS here, or H2C=true", http.StatusHTTPVersionNotSupported)
			return
		}
		rc := http.NewResponseController(w)
		now := time.Now()
		if write > 0 {
			_ = rc.SetWriteDeadline(now.Add(write))
		}
		if read > 0 && r.Body != nil && r.Body != http.NoBody {
			_ = rc.SetReadDeadline(now.Add(read))
		}
		next.ServeHTTP(w, r)
	})
}

// newErrorLog routes net/http's own log lines (panics in handlers, accept
// errors, TLS handshakes that failed) to slog. A failed handshake is what
// every port scanner causes, so it is logged at debug level only.
func newErrorLog(l *slog.Logger) *log.Logger {
	return log.New(errorLogWriter{l}, "", 0)
}

// RouteStdLog sends the standard logger's lines, which net/http's
// Transport writes (an unsolicited answer from an upstream, say), to slog
// the same way.
func RouteStdLog(l *slog.Logger) {
	log.SetFlags(0)
	log.SetOutput(errorLogWriter{l})
}

type errorLogWriter struct{ log *slog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	// The Transport quotes what an upstream sent unasked; an upstream may
	// echo a key there, so the quote is left out.
	if i := strings.Index(msg, " starting with "); i >= 0 {
		msg = msg[:i]
	}
	level := slog.LevelWarn
	switch {
	case strings.Contains(msg, "TLS handshake error"):
		level = slog.LevelDebug
	case strings.Contains(msg, "panic serving"):
		level = slog.LevelError
	}
	w.log.Log(context.Background(), level, "http server", "msg", msg)
	return len(p), nil
}
