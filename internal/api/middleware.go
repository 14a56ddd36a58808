package api

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apikeywallet/apiwallet"
)

// RequestID returns the request's id, set by the observe middleware.
func RequestID(ctx context.Context) string {
	return apiwallet.RequestInfoFrom(ctx).RequestID
}

var ridEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newRequestID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(ridEncoding.EncodeToString(b[:]))
}

// statusWriter records the status and size of a response, and puts the
// last word on the security headers as the header is sent. It passes
// Flush through (the proxy streams) and Unwrap, so that
// http.ResponseController's deadlines and full duplex reach net/http's
// writer.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	// sent is set once the header went out (or is about to).
	sent bool
	// hsts is the Strict-Transport-Security value, or "" to send none.
	hsts string
}

func (w *statusWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.sending()
		if w.status == 0 {
			w.status = code
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.sending()
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Flush() { _ = w.FlushError() }

// FlushError is what http.ResponseController.Flush calls: it must pass
// here, not around, so that the header is settled before it goes out.
func (w *statusWriter) FlushError() error {
	w.sending()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// sending settles the security headers before the header is sent. Defaults
// were set before the handler ran; a handler (or the upstream of a proxied
// call) may have replaced one, or added its own beside it: its value, the
// last, wins. nosniff always stays, and Strict-Transport-Security is the
// wallet's own policy for its host, never an upstream's.
func (w *statusWriter) sending() {
	if w.sent {
		return
	}
	w.sent = true
	h := w.ResponseWriter.Header()
	for _, sh := range securityHeaders[1:] {
		if vv := h[sh.name]; len(vv) > 1 {
			h[sh.name] = vv[len(vv)-1:]
		}
	}
	h["X-Content-Type-Options"] = securityHeaders[0].values
	if w.hsts != "" {
		h.Set("Strict-Transport-Security", w.hsts)
	} else {
		h.Del("Strict-Transport-Security")
	}
}

// securityHeaders are set on every answer before its handler runs, for
// what a browser does with a response it loads: the wallet's answers are
// JSON, never to be sniffed as HTML, framed or embedded. The dashboard
// sets its own Content-Security-Policy on its pages. nosniff is first: it
// is the one no handler may lift.
//
// Every answer shares the same value slices, so that setting them
// allocates nothing: the names are canonical, and a handler that changes
// one replaces its slice (Header.Set) or appends past its capacity (Add),
// never writing into it.
var securityHeaders = func() [6]struct {
	name   string
	values []string
} {
	kv := [...][2]string{
		{"X-Content-Type-Options", "nosniff"},
		{"Referrer-Policy", "no-referrer"},
		{"X-Frame-Options", "DENY"},
		{"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
		{"Cross-Origin-Resource-Policy", "same-origin"},
		{"Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"},
	}
	var out [6]struct {
		name   string
		values []string
	}
	for i, p := range kv {
		out[i].name, out[i].values = p[0], []string{p[1]}[:1:1]
	}
	return out
}()

// hstsValue is sent on secure answers in production: two years, the
// subdomains (where <service>.<wallet host> calls go) included.
const hstsValue = "max-age=63072000; includeSubDomains"

// metrics are the HTTP server's Prometheus collectors. Routes are labelled
// by their pattern, never by raw path, so the label set stays bounded.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiwallet_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiwallet_http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "apiwallet_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inflight)
	return m
}

var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// observe is the outermost middleware: it assigns the request id, sets
// the security headers, holds plain HTTP off the API in production,
// recovers panics, and writes one log line and the metrics for every
// request.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rid := newRequestID()
		h := w.Header()
		h.Set("X-Request-Id", rid)
		for _, sh := range securityHeaders {
			h[sh.name] = sh.values
		}
		peer, trusted := s.peer(r)
		ri := apiwallet.RequestInfo{ClientIP: s.clientIP(r, peer, trusted), RequestID: rid}
		ctx := apiwallet.WithRequestInfo(r.Context(), ri)
		r = r.WithContext(ctx)
		sw := &statusWriter{ResponseWriter: w}
		secure := r.TLS != nil || (trusted && forwardedProto(r) == "https")
		if s.cfg.Production && secure {
			sw.hsts = hstsValue
		}
		if s.metrics != nil {
			s.metrics.inflight.Inc()
			defer s.metrics.inflight.Dec()
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					// The proxy aborts a response on purpose when the
					// upstream breaks off: let net/http drop the connection.
					s.finish(sw, r, start, ri)
					panic(v)
				}
				s.log.ErrorContext(ctx, "panic", "request_id", rid, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeError(sw, r, s.log, errors.New("panic"))
				}
			}
			s.finish(sw, r, start, ri)
		}()
		if s.cfg.Production && !secure && !plainAllowed(r) {
			s.requireHTTPS(sw, r)
			return
		}
		next.ServeHTTP(sw, r)
	})
}

// plainAllowed are the requests production answers over plain HTTP: the
// load balancer's health probe and Prometheus's scrape, which reach the
// wallet inside the network.
func plainAllowed(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.URL.Path == "/monitoring/health" || r.URL.Path == "/metrics"
}

// requireHTTPS answers a plain-HTTP request in production. A browser
// asking for a page is sent to the same URL over HTTPS (308 keeps the
// method); an API call is refused, not redirected: its credential has
// already crossed the network in clear, and a client that silently follows
// would go on sending it so.
func (s *Server) requireHTTPS(w http.ResponseWriter, r *http.Request) {
	if isPage(r) {
		host := r.Host
		if u, err := url.Parse(s.cfg.GatewayURL); err == nil && u.Scheme == "https" && u.Host != "" {
			host = u.Host
		} else if h, _, err := net.SplitHostPort(host); err == nil {
			// The plain port is not the HTTPS one: the default (443) is.
			host = h
			if strings.Contains(h, ":") {
				host = "[" + h + "]"
			}
		}
		w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusPermanentRedirect)
		return
	}
	WriteProblem(w, &Problem{
		Type: ProblemBase + "https-required", Title: http.StatusText(http.StatusForbidden),
		Status: http.StatusForbidden,
		Detail: "the wallet's API is served over HTTPS only; call https://" + r.Host + r.URL.Path +
			" (and treat the credential this request carried as exposed)",
		Instance: r.URL.Path, RequestID: RequestID(r.Context()),
	})
}

// isPage tells a browser's request for a page (the dashboard and its
// assets) from an API call: a GET or HEAD outside the wallet's API paths,
// carrying none of the credentials a proxied call at the root would.
func isPage(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.URL.Path != "/" && walletPath(r.URL.Path) {
		return false
	}
	return r.Header.Get("Authorization") == "" && r.Header.Get("X-Api-Key") == ""
}

func (s *Server) finish(sw *statusWriter, r *http.Request, start time.Time, ri apiwallet.RequestInfo) {
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	elapsed := time.Since(start)
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	if s.metrics != nil {
		method := r.Method
		if !knownMethods[method] {
			method = "OTHER"
		}
		s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(sw.status)).Inc()
		s.metrics.duration.WithLabelValues(route, method).Observe(elapsed.Seconds())
	}
	level := slog.LevelInfo
	if sw.status >= 500 {
		level = slog.LevelError
	}
	// The query string is left out: upstream APIs such as OpenWeather take
	// their key as a query parameter.
	s.log.LogAttrs(r.Context(), level, "request",
		slog.String("request_id", ri.RequestID),
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", r.URL.Path),
		slog.Int("status", sw.status),
		slog.Int64("bytes", sw.bytes),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("client_ip", ri.ClientIP),
	)
}

// peer is the address the connection came from, and whether it is one of
// the TRUSTED_PROXIES.
func (s *Server) peer(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	a := ap.Addr().Unmap()
	return a, s.trustedProxy(a)
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the address a request came from: the connection's peer,
// unless that is a trusted proxy. Then X-Forwarded-For is walked from the
// right, where the proxy nearest the wallet appended, past every hop that
// is itself a trusted proxy: the first one that is not is the client. What
// lies to the left of it was written by the client and proves nothing.
func (s *Server) clientIP(r *http.Request, peer netip.Addr, trusted bool) string {
	if !peer.IsValid() {
		return r.RemoteAddr
	}
	if !trusted {
		return peer.String()
	}
	client := peer
	hops := forwardedFor(r)
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		client = a
		if !s.trustedProxy(a) {
			break
		}
	}
	return client.String()
}

// forwardedFor is every X-Forwarded-For hop, over all the header's lines.
func forwardedFor(r *http.Request) []string {
	var hops []string
	for _, line := range r.Header.Values("X-Forwarded-For") {
		for _, h := range strings.Split(line, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	return hops
}

// parseHop reads one X-Forwarded-For entry: an address, perhaps with a
// port ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseHop(h string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(h); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(h); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// forwardedProto is the scheme the proxy nearest the wallet says the
// client used: the last X-Forwarded-Proto value, lower-cased.
func forwardedProto(r *http.Request) string {
	vv := r.Header.Values("X-Forwarded-Proto")
	if len(vv) == 0 {
		return ""
	}
	last := vv[len(vv)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.ToLower(strings.TrimSpace(last))
}
