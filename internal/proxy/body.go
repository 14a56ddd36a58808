package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/apikeywallet/apiwallet"
	"io"
	"net/http"
	"sync"
)

// readBody takes the client's body: kept in memory when it is small enough
// to be sent again to another key, streamed (one attempt) when larger.
func (p *Proxy) readBody(c *call) error {
	c.idem = c.r.Header.Get("Idempotency-Key") != ""
	if c.length > p.opts.MaxBodyBytes {
		return p.tooLarge()
	}
	if c.body == nil || c.body == http.NoBody || c.length == 0 {
		return nil
	}
	limited := http.MaxBytesReader(c.w, c.body, p.opts.MaxBodyBytes)
	buf := bytes.NewBuffer(make([]byte, 0, min(max(c.length, 512), p.opts.RetryBufferBytes+1)))
	n, err := io.CopyN(buf, limited, p.opts.RetryBufferBytes+1)
	if err != nil && !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return p.tooLarge()
		}
		return errBodyRead
	}
	if n > p.opts.RetryBufferBytes {
		c.streamed = &clientBody{r: io.MultiReader(bytes.NewReader(buf.Bytes()), limited), c: limited}
		c.body = c.streamed
		return nil
	}
	c.buffered = buf.Bytes()
	return nil
}

// canRetry reports whether the body can be sent again: a streamed one is
// spent by its first attempt.
func (c *call) canRetry() bool { return c.streamed == nil }

var errBodyRead = refusal(apiwallet.EINVALID, "body_read_failed", "", "could not read the request body")

func (p *Proxy) tooLarge() error {
	return refusal(apiwallet.ETOOLARGE, "body_too_large", "body-too-large", fmt.Sprintf("the request body is larger than %d bytes", p.opts.MaxBodyBytes))
}

// clientBody is a client's request body streamed to the upstream; it keeps
// the error reading it, so that a failure of the client's body is not
// taken for a failure of the upstream (or of the key).
type clientBody struct {
	r   io.Reader
	c   io.Closer
	mu  sync.Mutex
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}
	return n, err
}

func (b *clientBody) Close() error { return b.c.Close() }

func (b *clientBody) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
