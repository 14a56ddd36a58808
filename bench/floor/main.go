// Command floor is the benchmark's bare-proxy floor: an
// httputil.ReverseProxy that does nothing but point the request at the
// upstream and replace the Authorization header with a fixed key.
//
// It is made as fair to the wallet as a bare proxy can be:
//   - its Transport is the wallet's, proxy.NewTransport, with
//     MaxIdleConnsPerHost set to the load's concurrency;
//   - it copies bodies through a pool of 32 KiB buffers (ReverseProxy's
//     BufferPool) rather than allocating one per call;
//   - it runs the wallet's adaptive GC floor (internal/gcfloor) unless GOGC
//     is set, as the wallet does; the runner gives it the GOGC, GOMEMLIMIT,
//     GOMAXPROCS and GODEBUG the operator gives the wallet.
//
// An https upstream is verified against the system roots, which SSL_CERT_FILE
// replaces on Linux, as for the wallet.
//
//	go run ./bench/floor -listen 127.0.0.1:9001 -upstream http://127.0.0.1:9000 \
//	    -auth "Bearer sk_test_bench_floor" -conns 64
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/apikeywallet/apiwallet/internal/gcfloor"
	"github.com/apikeywallet/apiwallet/internal/proxy"
)

// bufferPool hands ReverseProxy 32 KiB copy buffers, the size it would
// otherwise allocate for every call.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:9000", "upstream base URL (http or https)")
	auth := flag.String("auth", "Bearer sk_test_bench_floor", "Authorization header to inject")
	conns := flag.Int("conns", 64, "MaxIdleConnsPerHost of the upstream Transport (the load's concurrency)")
	flag.Parse()

	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		log.Fatalf("floor: bad -upstream %q", *upstream)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, set := os.LookupEnv("GOGC"); !set {
		go gcfloor.Run(ctx, time.Second) // as the wallet: an operator's GOGC wins
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("Authorization", *auth)
		},
		Transport:  proxy.NewTransport(proxy.TransportOptions{MaxIdleConnsPerHost: *conns}),
		BufferPool: &bufferPool{},
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Fatal(err)
		}
	}()
	fmt.Fprintf(os.Stderr, "floor: listening on %s, proxying to %s\n", ln.Addr(), target)

	<-ctx.Done()
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
}
