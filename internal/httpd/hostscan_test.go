package httpd

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHostCountedAcrossReads: the Host lines are counted as the header
// arrives, so a second Host is found wherever the reads split the header,
// and a pipelined request's Host lines are counted for it alone.
func TestHostCountedAcrossReads(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.Host)) })
	cases := []struct {
		name   string
		pieces []string
		want   []int
	}{
		{"one host in pieces", []string{"GET / HTTP/1.1\r\nHo", "st: a.example\r", "\nX: 1\r\n\r\n"}, []int{200}},
		{"second host in a later read", []string{"GET / HTTP/1.1\r\nHost: a.example\r\n", "X: 1\r\nhO", "sT: b.example\r\n\r\n"}, []int{400}},
		{"host-like names are not Host", []string{"GET / HTTP/1.1\r\nHost: a.example\r\nHostile: x\r\nX-Host: y\r\n\r\n"}, []int{200}},
		{"pipelined requests counted apart", []string{
			"GET / HTTP/1.1\r\nHost: a.example\r\n\r\nGET / HTTP/1.1\r\nHost: b.example\r\n\r\n"}, []int{200, 200}},
		{"pipelined second request with two", []string{
			"GET / HTTP/1.1\r\nHost: a.example\r\n\r\nGET / HTTP/1.1\r\nHost: b.example\r\nHost: c.example\r\n\r\n"}, []int{200, 400}},
		{"body bytes that look like a Host line", []string{
			"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 24\r\n\r\n", "\r\nHost: evil.example\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: b.example\r\n\r\n"}, []int{200, 200}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs := startServer(t, testImpl{"httpd", newHTTPD}, h, testConfig{})
			c, err := net.Dial("tcp", rs.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			for _, p := range tc.pieces {
				if _, err := c.Write([]byte(p)); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Millisecond) // separate reads on the server
			}
			br := bufio.NewReader(c)
			for i, want := range tc.want {
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("response %d: %v", i+1, err)
				}
				var body strings.Builder
				_, _ = bufio.NewReader(res.Body).WriteTo(&body)
				res.Body.Close()
				if res.StatusCode != want {
					t.Fatalf("response %d: %d %q, want %d", i+1, res.StatusCode, body.String(), want)
				}
			}
		})
	}
}
