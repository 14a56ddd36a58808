package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// healthcheck asks a running wallet's GET /monitoring/health and fails
// unless it answers 200: it is the container's HEALTHCHECK, where no curl
// exists. By default it asks this host's PORT over loopback, with HTTPS
// when TLS_CERT_FILE is set; that default URL skips certificate checks,
// since the certificate names the public host, not 127.0.0.1.
func healthcheck(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	port := env["PORT"]
	if port == "" {
		port = "6789"
	}
	scheme := "http"
	if env["TLS_CERT_FILE"] != "" {
		scheme = "https"
	}
	def := scheme + "://127.0.0.1:" + port + "/monitoring/health"
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", def, "the health `URL` to ask")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{"apiwallet healthcheck takes no arguments besides --url and --timeout"}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if *url == def && scheme == "https" {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback, our own port
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer res.Body.Close()
	var h struct {
		Status   string            `json:"status"`
		Services map[string]string `json:"services"`
	}
	_ = json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&h)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: %s answered %d (status %q, services %v)", *url, res.StatusCode, h.Status, h.Services)
	}
	fmt.Fprintf(stdout, "%s: %s (database %s, redis %s)\n", *url, h.Status, h.Services["database"], h.Services["redis"])
	return nil
}
