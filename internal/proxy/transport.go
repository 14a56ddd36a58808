package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// TransportOptions tunes the upstream Transport. Zero values take the
// defaults shown.
type TransportOptions struct {
	DialTimeout         time.Duration // 5 s
	TLSHandshakeTimeout time.Duration // 10 s
	// ResponseHeaderTimeout bounds the wait for an upstream's response
	// headers once the request is written (60 s). Bodies are not cut:
	// streams may last.
	ResponseHeaderTimeout time.Duration
	IdleConnTimeout       time.Duration // 90 s
	// MaxIdleConnsPerHost is how many keep-alive connections are kept to
	// each upstream (256): a gateway sends most of its calls to a handful
	// of hosts, and the default of 2 would dial for nearly every call.
	MaxIdleConnsPerHost int
	// TLSClientConfig is cloned; nil means the system's roots. Either way
	// the minimum version is TLS 1.2.
	TLSClientConfig *tls.Config
}

// NewTransport returns net/http's Transport tuned for a gateway: large
// per-host pools, bounded dial, handshake and header waits, HTTP/2 to
// upstreams that offer it, TLS 1.2 or later, and no automatic
// decompression (an upstream's body is relayed as it was encoded; the
// proxy decodes only an error body it must mask a key in).
func NewTransport(o TransportOptions) *http.Transport {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = 10 * time.Second
	}
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = 60 * time.Second
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = 90 * time.Second
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 256
	}
	tc := &tls.Config{}
	if o.TLSClientConfig != nil {
		tc = o.TLSClientConfig.Clone()
	}
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	return &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        tc,
		TLSHandshakeTimeout:    o.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  o.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        o.IdleConnTimeout,
		MaxIdleConns:           4 * o.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:    o.MaxIdleConnsPerHost,
		MaxResponseHeaderBytes: 1 << 20,
		DisableCompression:     true,
		ForceAttemptHTTP2:      true,
	}
}
