package proxy

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// upgradeType is the protocol a client asks to switch to (Connection:
// Upgrade with an Upgrade header, as a WebSocket handshake sends), or "".
func upgradeType(h http.Header) string {
	up := h.Get("Upgrade")
	if up == "" {
		return ""
	}
	for _, v := range h["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "upgrade") {
				return up
			}
		}
	}
	return ""
}

// tunnel relays a protocol switch (101 Switching Protocols: a WebSocket
// to OpenAI's Realtime API, say): the client's connection is taken over
// and bytes are copied both ways until either side closes. The frames
// are the protocol's own, and are not inspected.
// A switch it cannot relay is an error for the caller to answer with, as
// every refusal is.
func (p *Proxy) tunnel(c *call) error {
	res := c.res
	up, ok := res.Body.(cancelBody).ReadCloser.(io.ReadWriteCloser)
	if !ok || upgradeType(res.Header) == "" || !strings.EqualFold(upgradeType(res.Header), upgradeType(c.header)) {
		// A switch nobody asked for, or to another protocol: refused
		// (as net/http's ReverseProxy does).
		c.status, c.failed = http.StatusBadGateway, true
		p.record(c)
		_ = res.Body.Close()
		return refusal(apiwallet.EUPSTREAM, "unexpected_upgrade", "", "the upstream switched to a protocol the client did not ask for")
	}
	rc := http.NewResponseController(c.w)
	conn, brw, err := rc.Hijack()
	if err != nil {
		// HTTP/2 clients cannot be hijacked; they need an HTTP/1.1
		// connection to upgrade.
		c.status, c.failed = http.StatusBadGateway, true
		p.record(c)
		_ = res.Body.Close()
		return refusal(apiwallet.EUPSTREAM, "upgrade_needs_http1", "", "protocol upgrades need HTTP/1.1 between the client and the wallet")
	}
	defer conn.Close()
	// The server's deadlines were for the request; the tunnel lives as
	// long as its peers keep it open.
	_ = conn.SetDeadline(time.Time{})
	h := c.w.Header().Clone()
	h["Connection"] = []string{"Upgrade"}
	h["Upgrade"] = res.Header["Upgrade"]
	res.Header = h
	res.Body, res.ContentLength = nil, 0
	if err := res.Write(brw); err != nil {
		c.failed = true
		p.record(c)
		return nil
	}
	if err := brw.Flush(); err != nil {
		c.failed = true
		p.record(c)
		return nil
	}
	// Either side closing ends both directions.
	var once sync.Once
	closeBoth := func() { once.Do(func() { conn.Close(); up.Close() }) }
	var out int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		// brw holds whatever the client sent after its handshake.
		_, _ = io.Copy(up, brw.Reader)
		closeBoth()
	}()
	go func() {
		defer wg.Done()
		n, err := io.Copy(conn, up)
		out = n
		if err != nil && !errors.Is(err, io.EOF) {
			c.failed = true
		}
		closeBoth()
	}()
	wg.Wait()
	c.bytesOut = out
	p.record(c)
	return nil
}
