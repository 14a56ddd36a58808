package httpd

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// readHead reads a response's status line and header lines, without Date.
func readHead(t *testing.T, br *bufio.Reader) []string {
	t.Helper()
	var head []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read head: %v (so far %q)", err, head)
		}
		if l == "\r\n" {
			return head
		}
		if !strings.HasPrefix(l, "Date:") {
			head = append(head, strings.TrimSpace(l))
		}
	}
}

// TestSilentNewConnection: a connection that never sends a request is
// closed after the header timeout, not held for the idle timeout.
func TestSilentNewConnection(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		rs := startServer(t, im, http.NotFoundHandler(), testConfig{ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: 5 * time.Second})
		c := dialServer(t, rs.addr)
		if _, d := waitServerClose(t, c, c, 2*time.Second); d > time.Second {
			t.Fatalf("closed after %v", d)
		}
	})
}

// TestIdleAfterPOSTWithCRLF: the stray CRLF an old client sends after a
// POST body is skipped without putting the idle connection on the header
// timeout.
func TestIdleAfterPOSTWithCRLF(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) })
		rs := startServer(t, im, h, testConfig{ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: time.Second})
		c := dialServer(t, rs.addr)
		br := bufio.NewReader(c)
		rawRoundTrip(t, c, br, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\r\n")
		if _, d := waitServerClose(t, c, br, 3*time.Second); d < 700*time.Millisecond {
			t.Fatalf("idle connection closed after %v, before the idle timeout", d)
		}
	})
}

// TestHeaderChangedAfterWriteHeader: the header is sent as it was at
// WriteHeader, so a Content-Length set later cannot sit beside chunked
// framing.
func TestHeaderChangedAfterWriteHeader(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.Header().Set("Content-Length", "10")
			w.Header().Set("X-Late", "1")
			_, _ = w.Write([]byte(strings.Repeat("x", 5000)))
		})
		rs := startServer(t, im, h, testConfig{})
		c := dialServer(t, rs.addr)
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		head := strings.Join(readHead(t, bufio.NewReader(c)), "\n")
		if strings.Contains(head, "Content-Length") || strings.Contains(head, "X-Late") || !strings.Contains(head, "Transfer-Encoding: chunked") {
			t.Fatalf("head:\n%s", head)
		}
	})
}

// TestInterimAnswerHasNoLength: a 103 carries the handler's headers but
// no Content-Length: an interim answer has no body.
func TestInterimAnswerHasNoLength(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "2")
			w.Header().Set("Link", "</a>")
			w.WriteHeader(http.StatusEarlyHints)
			_, _ = io.WriteString(w, "ok")
		})
		rs := startServer(t, im, h, testConfig{})
		c := dialServer(t, rs.addr)
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		head := strings.Join(readHead(t, bufio.NewReader(c)), "\n")
		if !strings.HasPrefix(head, "HTTP/1.1 103") || !strings.Contains(head, "Link: </a>") || strings.Contains(head, "Content-Length") {
			t.Fatalf("103 head:\n%s", head)
		}
	})
}

// TestRequestChecks: refusals that depend on more than ReadRequest.
func TestRequestChecks(t *testing.T) {
	cases := []struct {
		raw  string
		want string
	}{
		// The Host header is checked even when the target names a host.
		{"GET http://a.example/ HTTP/1.1\r\nHost: b<c\r\n\r\n", "400"},
		{"GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", "200"},
		// Text that mentions a transfer encoding is a plain bad request.
		{"GET / transfer encoding\r\nHost: x\r\n\r\n", "400"},
		{"GET / HTTP/1.1\r\nHost: x\r\nX-Bad transfer encoding\r\n\r\n", "400"},
		// Only the first Expect header counts.
		{"POST / HTTP/1.1\r\nHost: x\r\nExpect: foo\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", "417"},
	}
	forEachImpl(t, func(t *testing.T, im testImpl) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) })
		rs := startServer(t, im, h, testConfig{})
		for _, tc := range cases {
			c := dialServer(t, rs.addr)
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			_, _ = io.WriteString(c, tc.raw)
			line, _ := bufio.NewReader(c).ReadString('\n')
			if !strings.HasPrefix(line, "HTTP/1.1 "+tc.want) {
				t.Errorf("%q: %q, want %s", tc.raw, strings.TrimSpace(line), tc.want)
			}
		}
	})
}

// TestNoContinueAfterAnswer: once the handler has chosen its answer, a
// read of the body does not send 100 Continue first.
func TestNoContinueAfterAnswer(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			w.(http.Flusher).Flush()
			_, _ = r.Body.Read(make([]byte, 1)) // ends when the client hangs up
		})
		rs := startServer(t, im, h, testConfig{})
		c := dialServer(t, rs.addr)
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		if line, _ := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 403") {
			t.Fatalf("first line %q, want the 403", line)
		}
	})
}

// TestPanicEndsRequest: after a handler panics, its context is cancelled
// and a goroutine it left reading the body cannot read another
// connection's request.
func TestPanicEndsRequest(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		ctxs := make(chan context.Context, 1)
		readNow := make(chan struct{})
		orphan := make(chan string, 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/panic" {
				ctxs <- r.Context()
				body := r.Body
				go func() {
					<-readNow
					b := make([]byte, 64)
					n, _ := body.Read(b)
					orphan <- string(b[:n])
				}()
				panic(http.ErrAbortHandler)
			}
			close(readNow)
			time.Sleep(50 * time.Millisecond)
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		})
		rs := startServer(t, im, h, testConfig{})
		a := dialServer(t, rs.addr)
		_, _ = io.WriteString(a, "POST /panic HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
		select {
		case <-(<-ctxs).Done():
		case <-time.After(2 * time.Second):
			t.Fatal("context not cancelled after the handler panicked")
		}
		// net/http reads what is left of the body before it closes.
		a.Close()

		b := dialServer(t, rs.addr)
		_ = b.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = io.WriteString(b, "POST /victim HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\nAuthorization=SECRET")
		res, err := http.ReadResponse(bufio.NewReader(b), nil)
		if err != nil {
			t.Fatalf("victim: %v", err)
		}
		body, _ := io.ReadAll(res.Body)
		if string(body) != "Authorization=SECRET" {
			t.Fatalf("victim's handler read %q", body)
		}
		select {
		case s := <-orphan:
			if strings.Contains(s, "SECRET") {
				t.Fatalf("the panicked request's body read another connection's bytes: %q", s)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("the orphaned body read never returned")
		}
	})
}

// TestSlowFirstHeader: the first request's header must arrive within the
// header timeout counted from accept, however it is spread out.
func TestSlowFirstHeader(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		rs := startServer(t, im, http.NotFoundHandler(), testConfig{ReadHeaderTimeout: 600 * time.Millisecond, IdleTimeout: 5 * time.Second})
		c := dialServer(t, rs.addr)
		time.Sleep(400 * time.Millisecond)
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\n")
		// About 200 ms are left of the timeout; restarted at the first
		// byte it would run 600 ms more.
		if _, d := waitServerClose(t, c, c, 2*time.Second); d > 450*time.Millisecond {
			t.Fatalf("closed %v after the first bytes; the header timeout is 600 ms from accept", d)
		}
	})
}
