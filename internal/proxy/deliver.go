package proxy

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxMaskedBody is the largest error body read whole so that an echo of
// the injected key can be masked in it.
const maxMaskedBody = 256 << 10

// deliver sends the upstream's answer to the client: status, headers,
// body and trailers unchanged but for hop-by-hop headers, Set-Cookie and
// any echo of the key, streaming as it arrives. A protocol switch (101)
// hands the connection over to a tunnel.
func (p *Proxy) deliver(c *call) error {
	res := c.res
	defer res.Body.Close()
	w := c.w
	mask := string(c.secret)
	masked := maskOf(mask)
	h := w.Header()
	copyResponseHeaders(h, res.Header)
	if mask != "" {
		maskHeaders(h, mask, masked)
	}
	overhead := p.now().Sub(c.start) - c.upstreamDur
	p.metrics.observeOverhead(c, overhead)
	setHeaders(h, "X-Wallet-Key-Id", c.keyID,
		"X-Wallet-Attempts", strconv.Itoa(len(c.tried)),
		"X-Wallet-Strategy", string(c.strategy),
		"X-Wallet-Overhead-Ms", strconv.FormatFloat(float64(overhead.Microseconds())/1000, 'f', 3, 64))

	c.status = res.StatusCode
	c.failed = res.StatusCode >= 500 || res.StatusCode == 429
	if !c.failed {
		p.countUse(c)
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		return p.tunnel(c)
	}

	out := newDeadlineWriter(w, p.opts.WriteTimeout)
	// Error bodies are where upstreams echo a key: mask it in them. A
	// gzip-encoded one is decoded first (the echo must be visible to be
	// masked). Small ones (the usual case) are read whole; larger ones are
	// masked as they stream.
	var ms *maskStream
	if res.StatusCode >= 400 && mask != "" {
		if gz, ok := gunzipped(res); ok {
			res.Body = gz
			res.ContentLength = -1
			h.Del("Content-Encoding")
			h.Del("Content-Length")
		}
		var b []byte
		var err error
		if res.ContentLength <= maxMaskedBody {
			b, err = io.ReadAll(io.LimitReader(res.Body, maxMaskedBody+1))
			if err == nil && len(b) <= maxMaskedBody {
				b = maskAll(b, []byte(mask), []byte(masked))
				h.Set("Content-Length", strconv.Itoa(len(b)))
				out.writeHeader(res.StatusCode)
				n, _ := out.Write(b)
				c.bytesOut = int64(n)
				p.record(c)
				return nil
			}
		}
		// Too large to mask whole (or broken off): what was read goes
		// first, then the rest, masked on the way.
		res.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), res.Body), res.Body}
		res.ContentLength = -1
		h.Del("Content-Length")
		ms = &maskStream{mask: []byte(mask), masked: []byte(masked)}
	}
	// Trailers force a chunked answer; hop-by-hop ones never pass.
	for k := range res.Trailer {
		if isHop(k) {
			delete(res.Trailer, k)
		}
	}
	announced := announceTrailers(h, res.Trailer)

	out.writeHeader(res.StatusCode)
	stream := res.ContentLength < 0 || strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream")
	if stream {
		out.flush() // the client sees the headers at once
	}
	// A stream from which nothing arrives for StreamIdleTimeout is ended:
	// the upstream's read is cancelled (the attempt's context).
	var idle *time.Timer
	if stream {
		idle = time.AfterFunc(p.opts.StreamIdleTimeout, c.cancelAttempt)
		defer idle.Stop()
	}
	bp := p.bufs.Get().(*[]byte)
	buf := *bp
	// upstreamBroke is the upstream breaking off mid-body; the client
	// going away (a failed write, or a read cancelled with its context,
	// e.g. an SDK that hangs up at "data: [DONE]" before the upstream's
	// last chunk) is not the upstream's failure. A client that stops
	// reading is cut by the write deadline, and its write fails.
	var upstreamBroke, clientBroke bool
	for {
		n, err := res.Body.Read(buf)
		if idle != nil {
			idle.Reset(p.opts.StreamIdleTimeout)
		}
		if n > 0 || (ms != nil && err == io.EOF) {
			chunk := buf[:n]
			if ms != nil {
				chunk = ms.next(chunk, err == io.EOF)
			}
			if _, werr := out.Write(chunk); werr != nil {
				clientBroke = true
				break
			}
			c.bytesOut += int64(len(chunk))
			if stream {
				out.flush()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			upstreamBroke = c.ctx.Err() == nil
			break
		}
	}
	p.bufs.Put(bp)
	if !upstreamBroke && !clientBroke {
		relayTrailers(h, res.Trailer, announced)
	}
	c.failed = c.failed || upstreamBroke || clientBroke
	if upstreamBroke {
		p.metrics.svc(c).upErrors[upReset].Inc()
	}
	p.record(c)
	if upstreamBroke || clientBroke {
		// The client must see a broken stream, not a clean end of a half
		// answer. ErrAbortHandler makes net/http drop the connection
		// without finishing the body.
		panic(http.ErrAbortHandler)
	}
	return nil
}

// maskHeaders replaces the secret wherever a header value echoes it. The
// values are the upstream's: a changed one is copied first.
func maskHeaders(h http.Header, mask, masked string) {
	for k, vv := range h {
		for i, v := range vv {
			if strings.Contains(v, mask) {
				if i == 0 {
					vv = append([]string(nil), vv...)
					h[k] = vv
				}
				vv[i] = string(maskAll([]byte(v), []byte(mask), []byte(masked)))
			}
		}
	}
}

// announceTrailers declares the upstream's announced trailers in the
// response's Trailer header, so that net/http sends them after the body.
// It returns how many it announced.
func announceTrailers(h http.Header, trailer http.Header) int {
	if len(trailer) == 0 {
		return 0
	}
	names := make([]string, 0, len(trailer))
	for k := range trailer {
		names = append(names, k)
	}
	h["Trailer"] = []string{strings.Join(names, ", ")}
	return len(trailer)
}

// relayTrailers copies the upstream's trailers, known once its body is
// read. If more arrived than it announced, all go with
// http.TrailerPrefix, which net/http allows once the header is written.
func relayTrailers(h http.Header, trailer http.Header, announced int) {
	if len(trailer) == 0 {
		return
	}
	prefix := ""
	if len(trailer) != announced {
		prefix = http.TrailerPrefix
	}
	for k, vv := range trailer {
		if !isHop(k) {
			h[prefix+k] = vv
		}
	}
}

// deadlineWriter writes an answer with a write deadline that is extended
// as bytes flow: a client that reads is never cut, one that stops reading
// is cut WriteTimeout after its last read.
type deadlineWriter struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	timeout  time.Duration
	deadline time.Time
}

func newDeadlineWriter(w http.ResponseWriter, timeout time.Duration) *deadlineWriter {
	return &deadlineWriter{w: w, rc: http.NewResponseController(w), timeout: timeout}
}

// extend moves the deadline on when less than half of it is left, so
// that a stream of small writes does not reset a timer for each one.
func (d *deadlineWriter) extend() {
	now := time.Now()
	if d.deadline.Sub(now) > d.timeout/2 {
		return
	}
	d.deadline = now.Add(d.timeout)
	// A writer without deadlines (a test's recorder) is served as it is.
	_ = d.rc.SetWriteDeadline(d.deadline)
}

func (d *deadlineWriter) writeHeader(status int) {
	d.extend()
	d.w.WriteHeader(status)
}

func (d *deadlineWriter) Write(b []byte) (int, error) {
	d.extend()
	return d.w.Write(b)
}

func (d *deadlineWriter) flush() {
	d.extend()
	_ = d.rc.Flush()
}

// maskStream masks a secret in a body that arrives in pieces. It holds back
// the last len(mask)-1 bytes of each piece: an occurrence that begins there
// is completed by the next piece and replaced then.
type maskStream struct {
	mask, masked []byte
	carry        []byte
}

func (m *maskStream) next(p []byte, final bool) []byte {
	data := maskAll(append(m.carry, p...), m.mask, m.masked)
	if final {
		m.carry = nil
		return data
	}
	cut := max(len(data)-(len(m.mask)-1), 0)
	m.carry = append(m.carry[:0:0], data[cut:]...)
	return data[:cut]
}

// maskAll replaces every echo of mask in b. One pass is not enough: the
// masked form ends with the key's last characters, which with the text
// after an echo can spell the key again ("aaaaaaaaa" echoed as
// "aaaaaaaaaaaaaa"). Each pass shortens b, so the loop ends.
func maskAll(b, mask, masked []byte) []byte {
	for len(mask) > len(masked) && bytes.Contains(b, mask) {
		b = bytes.ReplaceAll(b, mask, masked)
	}
	return b
}

// gunzipped returns a gzip-encoded response's body decoded.
func gunzipped(res *http.Response) (io.ReadCloser, bool) {
	switch strings.ToLower(strings.TrimSpace(res.Header.Get("Content-Encoding"))) {
	case "gzip", "x-gzip":
	default:
		return nil, false
	}
	rec := &recorder{r: res.Body, on: true}
	zr, err := gzip.NewReader(rec)
	if err != nil {
		// Not gzip after all: pass on what was read and the rest as is.
		res.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(rec.buf), res.Body), res.Body}
		return nil, false
	}
	rec.on, rec.buf = false, nil
	return struct {
		io.Reader
		io.Closer
	}{zr, res.Body}, true
}

// recorder keeps what is read through it while on.
type recorder struct {
	r   io.Reader
	buf []byte
	on  bool
}

func (x *recorder) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	if x.on {
		x.buf = append(x.buf, p[:n]...)
	}
	return n, err
}

// maskOf is the masked form of a secret for echoes: its last four
// characters at most.
func maskOf(secret string) string {
	if len(secret) <= 8 {
		return "…"
	}
	return "…" + secret[len(secret)-4:]
}
