package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestWriteDeadlineCutsStalledClient pins finding 2 of issue 12 at the
// server: a client that stops reading an answer no longer holds its
// handler. The handler's writes fail once WRITE_TIMEOUT has passed without
// the client taking the bytes.
func TestWriteDeadlineCutsStalledClient(t *testing.T) {
	werr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 32<<10))
		for {
			if _, err := w.Write(chunk); err != nil {
				werr <- err
				return
			}
		}
	})
	rs := start(t, h, []string{"WRITE_TIMEOUT=200ms"}, nil)
	c := dial(t, rs.addr)
	_, _ = io.WriteString(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	// The client reads nothing.
	select {
	case err := <-werr:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write error %v, want the write deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a client that stopped reading still holds the handler")
	}
}

// TestWriteDeadlineCutsStalledClientHTTP2 is the same over HTTP/2, where
// the client stops reading one stream: the stream ends, not the
// connection's other streams.
func TestWriteDeadlineCutsStalledClientHTTP2(t *testing.T) {
	env, _, _, pool := tlsEnv(t)
	werr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		chunk := []byte(strings.Repeat("x", 32<<10))
		for {
			if _, err := w.Write(chunk); err != nil {
				werr <- err
				return
			}
			if err := http.NewResponseController(w).Flush(); err != nil {
				werr <- err
				return
			}
		}
	})
	rs := start(t, h, append(env, "WRITE_TIMEOUT=200ms"), nil)
	client := h2Client(t, pool)
	res, err := client.Get("https://" + rs.addr + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ProtoMajor != 2 {
		t.Fatalf("proto %s, want HTTP/2", res.Proto)
	}
	select {
	case err := <-werr:
		if err == nil {
			t.Fatal("nil write error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a client that stopped reading still holds the handler")
	}
	res2, err := client.Get("https://" + rs.addr + "/other")
	if err != nil {
		t.Fatalf("another stream on the connection: %v", err)
	}
	res2.Body.Close()
}

// TestReadDeadlineCutsSlowBody: a client that starts a body and stalls is
// cut after READ_TIMEOUT; the handler's read fails.
func TestReadDeadlineCutsSlowBody(t *testing.T) {
	rerr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		rerr <- err
	})
	rs := start(t, h, []string{"READ_TIMEOUT=200ms"}, nil)
	c := dial(t, rs.addr)
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
	select {
	case err := <-rerr:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read error %v, want the read deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled request body still holds the handler")
	}
}

// streamHandler streams ticks for longer than the test's READ_TIMEOUT and
// WRITE_TIMEOUT together, pushing the write deadline forward as each tick
// goes out the way the proxy does, and reports whether the request's
// context ended on the way.
func streamHandler(ticks int, every, write time.Duration, ctxErr chan<- error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rc := http.NewResponseController(w)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range ticks {
			if err := rc.SetWriteDeadline(time.Now().Add(write)); err != nil {
				ctxErr <- err
				return
			}
			fmt.Fprintf(w, "data: %d\n\n", i)
			if err := rc.Flush(); err != nil {
				ctxErr <- err
				return
			}
			select {
			case <-r.Context().Done():
				ctxErr <- r.Context().Err()
				return
			case <-time.After(every):
			}
		}
		ctxErr <- nil
	}
}

// TestLiveStreamOutlivesDeadlines: a stream that keeps sending lives past
// READ_TIMEOUT and WRITE_TIMEOUT both, with or without a request body. A
// read deadline left on the connection once the body is read would cancel
// the request as soon as it passed: net/http reads the connection in the
// background meanwhile, to notice a client that hangs up.
func TestLiveStreamOutlivesDeadlines(t *testing.T) {
	// 800 ms of stream against 300 ms deadlines; each tick pushes the
	// write deadline 2 s on, so a slow moment of a loaded machine does
	// not pass for a stalled client.
	const ticks, every = 8, 100 * time.Millisecond
	for _, tc := range []struct{ name, raw string }{
		{"GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"POST", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"},
		{"POST chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctxErr := make(chan error, 1)
			rs := start(t, streamHandler(ticks, every, 2*time.Second, ctxErr), []string{"READ_TIMEOUT=300ms", "WRITE_TIMEOUT=300ms"}, nil)
			c := dial(t, rs.addr)
			res, body := roundTrip(t, c, bufio.NewReader(c), tc.raw)
			if err := <-ctxErr; err != nil {
				t.Fatalf("the stream ended early: %v", err)
			}
			if res.StatusCode != 200 || strings.Count(body, "data: ") != ticks {
				t.Fatalf("%d, body %q", res.StatusCode, body)
			}
		})
	}
}

// TestResponseControllerOverTLS: the deadlines and flushing the proxy
// relies on work on HTTP/2 streams too.
func TestResponseControllerOverTLS(t *testing.T) {
	env, _, _, pool := tlsEnv(t)
	errs := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		errs <- errors.Join(rc.SetReadDeadline(time.Now().Add(time.Minute)), rc.SetWriteDeadline(time.Now().Add(time.Minute)),
			rc.EnableFullDuplex(), rc.Flush())
	})
	rs := start(t, h, env, nil)
	res, err := h2Client(t, pool).Post("https://"+rs.addr+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.ProtoMajor != 2 {
		t.Fatalf("proto %s", res.Proto)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}
