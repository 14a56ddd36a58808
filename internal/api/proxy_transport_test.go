package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// hostileUpstream is a raw HTTP/1.1 server that answers /v1/unsolicited
// with a 204 and, 30 ms later, a second answer nobody asked for; and
// /v1/extra with two answers in one write. Every other path gets "ok".
// The stray answers carry a marker that must never reach any client.
func hostileUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	const stray = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n{\"leak\":\"FROM-ANOTHER\"}\n"
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					switch req.URL.Path {
					case "/v1/unsolicited":
						_, _ = io.WriteString(conn, "HTTP/1.1 204 No Content\r\n\r\n")
						time.Sleep(30 * time.Millisecond)
						_, _ = io.WriteString(conn, stray)
					case "/v1/extra":
						_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"+stray)
					default:
						_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}")
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// An upstream that sends answers nobody asked for never gets one to
// another call, and in particular never to another workspace's call over
// a pooled connection.
func TestProxyHostileUpstreamNeverCrossesWorkspaces(t *testing.T) {
	forEachProxyBackend(t, func(t *testing.T, open func(env ...string) *testServer) {
		ts := open("STRIPE_BASE_URL=" + hostileUpstream(t))
		a, b := newProxyWorld(t, ts), newProxyWorld(t, ts)
		a.addKey("stripe", "sk_test_hostileAAAAAAAAAAAAAAAAAAAA", "paid", -1)
		b.addKey("stripe", "sk_test_hostileBBBBBBBBBBBBBBBBBBBB", "paid", -1)
		_, ta := a.token("stripe")
		_, tb := b.token("stripe")
		for round := 0; round < 3; round++ {
			a.call("GET", "/proxy/stripe/v1/unsolicited", ta, nil).want(t, 204)
			a.call("GET", "/proxy/stripe/v1/extra", ta, nil).want(t, 200)
			time.Sleep(60 * time.Millisecond) // the stray answer is on the wire
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 5 {
						r := b.ts.do("GET", "/proxy/stripe/v1/b", tb, nil)
						if strings.Contains(string(r.Body), "FROM-ANOTHER") || r.Status != 200 || string(r.Body) != `{"ok":true}` {
							t.Errorf("workspace B got %d %q", r.Status, r.Body)
						}
					}
				}()
			}
			wg.Wait()
			if r := a.call("GET", "/proxy/stripe/v1/a", ta, nil); strings.Contains(string(r.Body), "FROM-ANOTHER") {
				t.Errorf("workspace A got a stray answer: %s", r.Body)
			}
		}
	})
}

// A client that stops reading a streamed answer is cut after the write
// deadline: the handler ends, the upstream call is cancelled and the call
// is recorded (its quota reservation settled), instead of holding all
// three for ever.
func TestProxyClientThatStopsReadingIsCut(t *testing.T) {
	upstreamDone := make(chan struct{})
	var once sync.Once
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		defer once.Do(func() { close(upstreamDone) })
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := "data: " + strings.Repeat("x", 32<<10) + "\n\n"
		rc := http.NewResponseController(w)
		for r.Context().Err() == nil {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
			_ = rc.Flush()
		}
	})
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL, "WRITE_TIMEOUT=5s")
	pw := newProxyWorld(t, ts)
	pw.addKey("openai", "sk-proj-stopREADINGfake000000000000", "paid", -1)
	_, tok := pw.token("openai")

	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The client's receive buffer is kept small so that the wallet's
	// writes block soon.
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(conn, "GET /proxy/openai/v1/chat/completions HTTP/1.1\r\nHost: wallet\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(line, "200") {
		t.Fatalf("status line %q: %v", line, err)
	}
	// Now the client reads nothing more.
	select {
	case <-upstreamDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the upstream call still runs 30 s after the client stopped reading")
	}
	rows := pw.waitUsage(1)
	if rows[0].Status != 200 || !rows[0].Failed {
		t.Fatalf("usage record: %+v", rows[0])
	}
}

// A WebSocket handshake (OpenAI's Realtime API) passes through: the
// upstream sees the stored key, never the wallet token, and messages go
// both ways.
func TestProxyWebSocketEcho(t *testing.T) {
	const secret = "sk-proj-websocketFAKE00000000000000"
	var sawAuth string
	var mu sync.Mutex
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sawAuth = r.Header.Get("Authorization")
		mu.Unlock()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	pw.addKey("openai", secret, "paid", -1)
	_, tok := pw.token("openai")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/proxy/openai/v1/realtime?model=gpt-realtime",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if err != nil {
		t.Fatalf("dial through the wallet: %v", err)
	}
	defer c.CloseNow()
	if res.Header.Get("X-Wallet-Key-Id") == "" {
		t.Errorf("the handshake answer lacks X-Wallet-Key-Id: %v", res.Header)
	}
	for i := range 3 {
		msg := fmt.Sprintf("hello %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "echo: "+msg {
			t.Fatalf("got %q", got)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	mu.Lock()
	defer mu.Unlock()
	if sawAuth != "Bearer "+secret {
		t.Fatalf("upstream saw Authorization %q, want the stored key", sawAuth)
	}
	if rows := pw.waitUsage(1); rows[0].Status != http.StatusSwitchingProtocols {
		t.Fatalf("usage: %+v", rows[0])
	}
}

// Trailers an upstream sends after its body (announced or not) reach the
// client.
func TestProxyRelaysTrailers(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":[]}`)
		_ = http.NewResponseController(w).Flush()
		w.Header().Set("X-Checksum", "abc123")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	})
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	pw.addKey("openai", "sk-proj-trailersFAKE000000000000000", "paid", -1)
	_, tok := pw.token("openai")
	req, _ := http.NewRequest("GET", ts.URL+"/proxy/openai/v1/files", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if string(body) != `{"data":[]}` {
		t.Fatalf("body %q", body)
	}
	if res.Trailer.Get("X-Checksum") != "abc123" || res.Trailer.Get("X-Late") != "late" {
		t.Fatalf("trailers %v", res.Trailer)
	}
}
