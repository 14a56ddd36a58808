package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certCheckInterval is how often a handshake may look at the certificate
// files: often enough that a renewed certificate is served within seconds,
// rarely enough that handshakes do not stat files.
const certCheckInterval = 5 * time.Second

// certReloader serves the certificate in a pair of files and loads it again
// when either file changes (a renewal by certbot or a mounted secret). A new
// pair that does not load is logged and the one in use kept.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	every             time.Duration
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp // of the pair last tried, loaded or not
	checked time.Time
}

// fileStamp is what tells that a file changed without reading it.
type fileStamp struct {
	mod  time.Time
	size int64
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log, every: certCheckInterval, now: time.Now}
	stamp, err := c.stamps()
	if err != nil {
		return nil, fmt.Errorf("TLS_CERT_FILE/TLS_KEY_FILE: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS_CERT_FILE/TLS_KEY_FILE: %w", err)
	}
	c.cert, c.stamp, c.checked = &cert, stamp, c.now()
	c.logLoaded("TLS certificate loaded")
	return c, nil
}

func (c *certReloader) stamps() ([2]fileStamp, error) {
	var s [2]fileStamp
	for i, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return s, err
		}
		s[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	return s, nil
}

// get is tls.Config.GetCertificate.
func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); now.Sub(c.checked) >= c.every {
		c.checked = now
		c.reload()
	}
	return c.cert, nil
}

func (c *certReloader) reload() {
	stamp, err := c.stamps()
	if err != nil {
		if c.stamp != ([2]fileStamp{}) {
			c.log.Warn("TLS certificate files unreadable; serving the certificate loaded before", "err", err)
			c.stamp = [2]fileStamp{}
		}
		return
	}
	if stamp == c.stamp {
		return
	}
	// Remembered even when the pair does not load, so that a half-written
	// renewal is tried again once a file changes, not logged every check.
	c.stamp = stamp
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.log.Warn("new TLS certificate files do not load; serving the certificate loaded before", "err", err)
		return
	}
	c.cert = &cert
	c.logLoaded("TLS certificate reloaded")
}

func (c *certReloader) logLoaded(msg string) {
	attrs := []any{"cert_file", c.certFile}
	if leaf := c.cert.Leaf; leaf != nil {
		attrs = append(attrs, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	c.log.Info(msg, attrs...)
}
