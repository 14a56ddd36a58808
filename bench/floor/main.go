// Command floor is the benchmark's second floor: a bare
// httputil.ReverseProxy that does nothing but replace the Authorization
// header with a fixed key. It keeps the standard library's default Transport
// settings except MaxIdleConnsPerHost, raised to the load's concurrency so
// that upstream connections are reused (the default of 2 would make most
// requests dial a new connection).
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
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:9000", "upstream base URL")
	auth := flag.String("auth", "Bearer sk_test_bench_floor", "Authorization header to inject")
	conns := flag.Int("conns", 64, "MaxIdleConnsPerHost of the upstream Transport (the load's concurrency)")
	flag.Parse()

	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		log.Fatalf("floor: bad -upstream %q", *upstream)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = *conns
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("Authorization", *auth)
		},
		Transport: tr,
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Fatal(err)
		}
	}()
	fmt.Fprintf(os.Stderr, "floor: listening on %s, proxying to %s\n", ln.Addr(), target)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	<-ctx.Done()
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
}
