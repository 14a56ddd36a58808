// Command upstream is the benchmark's stub upstream: a fast HTTP server that
// answers every request with one small fixed JSON body over keep-alive, and
// checks that each request carries an injected key, so that every proxy under
// test is seen to really inject one.
//
// A request is accepted when its Authorization header is "Bearer K" or
// "Basic base64(K:)" and K starts with -key-prefix (or equals -key when that
// is set). Anything else is answered 401 and counted as a mismatch. The
// counts are served as JSON at GET /__bench/stats (for the runner, which
// reads them before and after each target) and printed at exit.
//
// Besides the plain listener it can serve the same answers over HTTPS
// (-tls-listen with -tls-cert and -tls-key; HTTP/2 is offered by ALPN as
// public APIs do, unless -h2=false) and, on a third listener, after a fixed
// delay per answer (-slow-listen with -delay), to stand for an upstream far
// away. All listeners share the counters; the stats also count the requests
// that came over HTTP/2.
//
//	go run ./bench/upstream -listen 127.0.0.1:9000 -key-prefix sk_test_bench_
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// body is the fixed response: a small Stripe-like charge.
var body = []byte(`{"id":"ch_bench","object":"charge","amount":2000,"currency":"usd","paid":true,"status":"succeeded"}` + "\n")

var rejectBody = []byte(`{"error":{"type":"invalid_request_error","code":"bench_auth_mismatch","message":"bench upstream: the Authorization header does not carry an injected bench key"}}` + "\n")

// Stats are the stub's counters, as GET /__bench/stats serves them.
type Stats struct {
	Requests   int64    `json:"requests"`
	Mismatches int64    `json:"mismatches"`
	HTTP2      int64    `json:"http2"`                      // requests that came over HTTP/2
	Samples    []string `json:"mismatch_samples,omitempty"` // the first few bad headers, shortened
}

type stub struct {
	exact, prefix string
	requests      atomic.Int64
	mismatches    atomic.Int64
	http2         atomic.Int64
	mu            sync.Mutex
	samples       []string
}

func (s *stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/__bench/stats" {
		w.Header()["Content-Type"] = []string{"application/json"}
		_ = json.NewEncoder(w).Encode(s.stats())
		return
	}
	s.requests.Add(1)
	if r.ProtoMajor == 2 {
		s.http2.Add(1)
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	if !s.ok(r.Header["Authorization"]) {
		s.mismatch(r.Header.Get("Authorization"))
		h["Content-Length"] = []string{lenRejectBody}
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write(rejectBody)
		return
	}
	h["Content-Length"] = []string{lenBody}
	_, _ = w.Write(body)
}

var (
	lenBody       = fmt.Sprint(len(body))
	lenRejectBody = fmt.Sprint(len(rejectBody))
)

// ok reports whether the Authorization values hold exactly one acceptable key.
func (s *stub) ok(v []string) bool {
	if len(v) != 1 {
		return false
	}
	key, ok := keyOf(v[0])
	if !ok {
		return false
	}
	if s.exact != "" {
		return key == s.exact
	}
	return strings.HasPrefix(key, s.prefix) && len(key) > len(s.prefix)
}

// keyOf extracts the key of a Bearer or Basic (key as user, empty password)
// Authorization header; services inject keys either way.
func keyOf(h string) (string, bool) {
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok {
		return "", false
	}
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return cred, true
	case strings.EqualFold(scheme, "Basic"):
		b, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return "", false
		}
		user, pass, ok := strings.Cut(string(b), ":")
		return user, ok && pass == ""
	}
	return "", false
}

func (s *stub) mismatch(h string) {
	s.mismatches.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) < 5 {
		if len(h) > 40 {
			h = h[:40] + "…"
		}
		s.samples = append(s.samples, fmt.Sprintf("%q", h))
	}
}

func (s *stub) stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Requests: s.requests.Load(), Mismatches: s.mismatches.Load(), HTTP2: s.http2.Load(), Samples: append([]string(nil), s.samples...)}
}

// delayed answers every request after d, as an upstream with that much
// latency would.
func delayed(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(d)
		h.ServeHTTP(w, r)
	})
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to listen on (plain HTTP; serves /__bench/stats)")
	prefix := flag.String("key-prefix", "sk_test_bench_", "accept any key starting with this prefix")
	exact := flag.String("key", "", "accept only this exact key (overrides -key-prefix)")
	tlsListen := flag.String("tls-listen", "", "also serve HTTPS on this address (needs -tls-cert and -tls-key)")
	tlsCert := flag.String("tls-cert", "", "PEM certificate for -tls-listen")
	tlsKey := flag.String("tls-key", "", "PEM private key for -tls-listen")
	h2 := flag.Bool("h2", true, "offer HTTP/2 on -tls-listen (ALPN h2); false serves HTTP/1.1 only")
	slowListen := flag.String("slow-listen", "", "also serve plain HTTP on this address, answering after -delay")
	delay := flag.Duration("delay", 20*time.Millisecond, "how long -slow-listen waits before each answer")
	flag.Parse()
	if *tlsListen != "" && (*tlsCert == "" || *tlsKey == "") {
		log.Fatal("upstream: -tls-listen needs -tls-cert and -tls-key")
	}

	s := &stub{exact: *exact, prefix: *prefix}
	var servers []*http.Server
	serve := func(addr string, h http.Handler, tls bool) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Fatal(err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
		if tls {
			p := new(http.Protocols)
			p.SetHTTP1(true)
			p.SetHTTP2(*h2)
			srv.Protocols = p
		}
		servers = append(servers, srv)
		go func() {
			var err error
			if tls {
				err = srv.ServeTLS(ln, *tlsCert, *tlsKey)
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && err != http.ErrServerClosed {
				log.Fatal(err)
			}
		}()
		fmt.Fprintf(os.Stderr, "upstream: listening on %s (tls %v)\n", ln.Addr(), tls)
	}
	serve(*listen, s, false)
	if *tlsListen != "" {
		serve(*tlsListen, s, true)
	}
	if *slowListen != "" {
		serve(*slowListen, delayed(s, *delay), false)
		fmt.Fprintf(os.Stderr, "upstream: %s answers after %s\n", *slowListen, *delay)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	<-ctx.Done()
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(sctx)
	}
	st := s.stats()
	fmt.Fprintf(os.Stderr, "upstream: %d requests (%d over HTTP/2), %d Authorization mismatches\n", st.Requests, st.HTTP2, st.Mismatches)
	for _, v := range st.Samples {
		fmt.Fprintf(os.Stderr, "upstream: mismatch sample: %s\n", v)
	}
	if st.Mismatches > 0 {
		os.Exit(1)
	}
}
