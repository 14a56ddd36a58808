package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// brokenUpstream writes the first part of an answer, then drops the
// connection: chunked (no Content-Length), with a Content-Length it does not
// honour, or as an SSE stream.
func brokenUpstream(t *testing.T) *fakeUpstream {
	return newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		switch r.URL.Path {
		case "/v1/chunked":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"data":[{"id":1},`)
			_ = rc.Flush()
		case "/v1/length":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, `{"data":[{"id":1},`)
			_ = rc.Flush()
		case "/v1/chat/completions":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "data: %s\n\n", chatChunk("Hel", ""))
			_ = rc.Flush()
		case "/v1/slow-end":
			// A whole SSE answer, then a pause before the end of the body:
			// a client that stops at [DONE] hangs up in between.
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "data: %s\n\ndata: [DONE]\n\n", chatChunk("Hi", "stop"))
			_ = rc.Flush()
			time.Sleep(300 * time.Millisecond)
			return
		default:
			_, _ = io.WriteString(w, `{"ok":true}`)
			return
		}
		time.Sleep(50 * time.Millisecond)
		conn, _, err := rc.Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	})
}

// TestProxyBrokenStream: when the upstream breaks off mid-body the client
// sees a broken stream, never a clean end of half an answer, and the usage
// record marks the call failed.
func TestProxyBrokenStream(t *testing.T) {
	up := brokenUpstream(t)
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	keyID := pw.addKey("openai", "sk-proj-brokenSTREAMfake000000000000", "paid", -1)
	_, tok := pw.token("openai")

	for i, path := range []string{"/v1/chunked", "/v1/length"} {
		req, _ := http.NewRequest("GET", ts.URL+"/proxy/openai"+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		res, err := c.Do(req)
		if err != nil {
			// The wallet aborted before its buffered headers went out: a
			// broken response too (the chunked case below checks that
			// what was flushed does arrive).
			t.Logf("%s: %v", path, err)
		} else {
			if res.StatusCode != 200 {
				t.Fatalf("%s: status %d", path, res.StatusCode)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err == nil {
				t.Fatalf("%s: the client read a clean end after %q: want a broken stream", path, body)
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%s: read error %v, want unexpected EOF", path, err)
			}
			if !bytes.HasPrefix(body, []byte(`{"data":[{"id":1},`)) {
				t.Errorf("%s: the part before the break did not arrive: %q", path, body)
			}
		}
		if path == "/v1/chunked" && err != nil {
			t.Fatalf("%s: the flushed part never arrived: %v", path, err)
		}
		rows := pw.waitUsage(i + 1)
		u := rows[i]
		if !u.Failed || u.KeyID != keyID || u.Status != 200 {
			t.Errorf("%s: usage record %+v, want failed", path, u)
		}
	}

	// Through the SDK: the stream ends in an error, not a clean [DONE].
	stream := openaiClient(ts, tok).Chat.Completions.NewStreaming(context.Background(), chatParams())
	n := 0
	for stream.Next() {
		n++
	}
	if stream.Err() == nil {
		t.Fatalf("openai-go stream ended cleanly after %d chunks: want an error", n)
	}
	if n != 1 {
		t.Errorf("openai-go read %d chunks before the break, want 1", n)
	}
	_ = stream.Close()
	rows := pw.waitUsage(3)
	if !rows[2].Failed {
		t.Errorf("SSE usage record %+v, want failed", rows[2])
	}

	// A client that hangs up once it has the whole answer, before the
	// upstream's end of body: the call did not fail.
	req, _ := http.NewRequest("GET", ts.URL+"/proxy/openai/v1/slow-end", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var got []byte
	for !bytes.Contains(got, []byte("[DONE]")) {
		n, err := res.Body.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read: %v after %q", err, got)
		}
	}
	res.Body.Close()
	rows = pw.waitUsage(4)
	if rows[3].Failed || rows[3].Status != 200 {
		t.Errorf("usage record of a call the client ended at [DONE]: %+v, want not failed", rows[3])
	}
}

// TestProxyCallServiceOmitted: POST /proxy may leave out the service when
// the workspace holds keys for one service; with two it is a 400 listing
// them.
func TestProxyCallServiceOmitted(t *testing.T) {
	const stripeKey, openaiKey = "sk_test_seedCALLfake000000000000000s", "sk-proj-seedCALLfake00000000000000o"
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, `{"id":"cus_1","object":"customer","auth":"%t","path":%q,"query":%q,"body":%q,"ctype":%q}`,
			strings.HasPrefix(r.Header.Get("Authorization"), "Bearer sk_test_"), r.URL.Path, r.URL.RawQuery, body,
			r.Header.Get("Content-Type"))
	})
	ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL, "OPENAI_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	pw.addKey("stripe", stripeKey, "paid", -1)

	// The seed's body, service left out, with the login JWT.
	call := map[string]any{"endpoint": "/v1/customers", "method": "POST",
		"body": map[string]any{"email": "a@example.com"}, "query": map[string]string{"expand[]": "x"}}
	r := pw.call("POST", "/proxy", pw.acct.Token, call).want(t, 200)
	m := r.JSON()
	if m["auth"] != "true" || m["path"] != "/v1/customers" || m["query"] != "expand%5B%5D=x" ||
		m["body"] != `{"email":"a@example.com"}` || m["ctype"] != "application/json" {
		t.Fatalf("upstream saw %s", r.Body)
	}
	if r.Header.Get("X-Wallet-Key-Id") == "" {
		t.Errorf("no X-Wallet-Key-Id")
	}
	// A JSON string body is sent as its text, with the caller's headers.
	r = pw.call("POST", "/proxy", pw.acct.Token, map[string]any{"endpoint": "/v1/customers", "method": "POST",
		"body": "email=b%40example.com", "headers": map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}).want(t, 200)
	if m := r.JSON(); m["body"] != "email=b%40example.com" || m["ctype"] != "application/x-www-form-urlencoded" {
		t.Fatalf("upstream saw %s", r.Body)
	}

	// Two services: ambiguous.
	pw.addKey("openai", openaiKey, "paid", -1)
	r = pw.call("POST", "/proxy", pw.acct.Token, call).want(t, http.StatusBadRequest)
	m = r.JSON()
	cands, _ := m["candidates"].([]any)
	if len(cands) != 2 || cands[0] != "openai" || cands[1] != "stripe" {
		t.Fatalf("candidates = %v; body %s", m["candidates"], r.Body)
	}
	if !strings.Contains(m["detail"].(string), "openai, stripe") {
		t.Errorf("detail = %q", m["detail"])
	}
	// A token scoped to one of them makes it unambiguous again.
	_, tok := pw.token("stripe")
	pw.call("POST", "/proxy", tok, call).want(t, 200)
	// Naming the service always works.
	call["service"] = "openai"
	r = pw.call("POST", "/proxy", pw.acct.Token, call).want(t, 200)
	if r.JSON()["auth"] != "false" {
		t.Errorf("the openai call did not use the openai key: %s", r.Body)
	}
	if n := len(up.requests()); n != 4 {
		t.Errorf("upstream saw %d requests, want 4", n)
	}
}

// TestProxyRedirectNotFollowed: an upstream redirect to another host is
// passed to the client as it is, never followed by the wallet with the key.
func TestProxyRedirectNotFollowed(t *testing.T) {
	evil := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/steal", http.StatusFound)
	})
	ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	pw.addKey("stripe", "sk_test_redirectFAKE00000000000000r", "paid", -1)
	_, tok := pw.token("stripe")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", ts.URL+"/proxy/stripe/v1/charges", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != evil.URL+"/steal" {
		t.Fatalf("status %d Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	if n := len(evil.requests()); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}
