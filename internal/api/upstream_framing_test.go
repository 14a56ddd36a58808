package api_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// rawUpstream answers each request with the raw bytes answers[path] and
// closes the connection after it, so that every answer is read alone.
func rawUpstream(t *testing.T, answers map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				_, _ = io.WriteString(conn, answers[req.URL.Path])
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// The wallet's upstream side reads each answer one unambiguous way: an
// answer two parsers could frame differently, or that tries to inject
// headers or flood the client with interim answers, becomes a 502 problem
// (and the attempt a failure), never a relayed answer of a meaning the
// wallet did not check.
func TestProxyUpstreamFraming(t *testing.T) {
	ok := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	cases := []struct {
		name, raw string
		status    int    // what the client gets
		body      string // the body it gets, for relayed answers
	}{
		{"plain", ok + "Content-Length: 11\r\n\r\n{\"ok\":true}", 200, `{"ok":true}`},
		{"chunked", ok + "Transfer-Encoding: chunked\r\n\r\nb\r\n{\"ok\":true}\r\n0\r\n\r\n", 200, `{"ok":true}`},
		{"Content-Length and chunked", ok + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n{\"ok\":true}\r\n0\r\n\r\n", 200, `{"ok":true}`},
		{"two different Content-Lengths", ok + "Content-Length: 3\r\nContent-Length: 11\r\n\r\n{\"ok\":true}", 502, ""},
		{"obfuscated Transfer-Encoding", ok + "Transfer-Encoding: xchunked\r\n\r\nb\r\n{\"ok\":true}\r\n0\r\n\r\n", 502, ""},
		// A body that breaks after the headers were relayed: the client's
		// answer breaks too (status -1), never a clean end of a part.
		{"bad chunk size", ok + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{\"ok\":true}\r\n0\r\n\r\n", -1, ""},
		{"CR in a header value", ok + "X-Injected: a\rSet-Cookie: stolen=1\r\nContent-Length: 2\r\n\r\nok", 502, ""},
		{"bad status line", "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", 502, ""},
		{"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n", 502, ""},
		// Interim answers are read and dropped (up to net/http's bound on
		// their headers); only the final answer reaches the client.
		{"1xx flood", strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n", 50) + ok + "Content-Length: 11\r\n\r\n{\"ok\":true}", 200, `{"ok":true}`},
		{"a few 1xx", strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 2) + ok + "Content-Length: 11\r\n\r\n{\"ok\":true}", 200, `{"ok":true}`},
		{"101 without an upgrade asked", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nraw bytes", 502, ""},
		{"body shorter than its length", ok + "Content-Length: 100\r\n\r\n{\"ok\":true}", -1, ""},
	}
	answers := map[string]string{}
	for i, c := range cases {
		answers["/v1/case"+string(rune('a'+i))] = c.raw
	}
	ts := proxySQLite(t, "OPENAI_BASE_URL="+rawUpstream(t, answers))
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A workspace and key of its own: a failed attempt cools the
			// key down.
			w := newProxyWorld(t, ts)
			w.addKey("openai", "sk-framing-0123456789abcdef", "paid", -1)
			_, tok := w.token("openai")
			path := "/proxy/openai/v1/case" + string(rune('a'+i))
			if c.status == -1 {
				req, _ := http.NewRequest("GET", ts.URL+path, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				res, err := ts.Client().Do(req)
				if err == nil {
					_, err = io.ReadAll(res.Body)
					res.Body.Close()
				}
				if err == nil {
					t.Fatalf("a broken upstream body reached the client as a complete %d answer", res.StatusCode)
				}
				return
			}
			r := w.call("GET", path, tok, nil)
			if c.status == 502 {
				if r.Status != 502 {
					t.Fatalf("%d %q, want a 502 problem", r.Status, r.Body)
				}
				if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
					t.Fatalf("Content-Type %q: %d %q", r.Header.Get("Content-Type"), r.Status, r.Body)
				}
				if strings.Contains(string(r.Body), "stolen") || r.Header.Get("Set-Cookie") != "" {
					t.Fatalf("an injected header came through: %v %s", r.Header, r.Body)
				}
				return
			}
			if r.Status != c.status || string(r.Body) != c.body {
				t.Fatalf("%d %q, want %d %q", r.Status, r.Body, c.status, c.body)
			}
			if r.Header.Get("X-Injected") != "" || r.Header.Get("Set-Cookie") != "" {
				t.Fatalf("headers: %v", r.Header)
			}
		})
	}
}
