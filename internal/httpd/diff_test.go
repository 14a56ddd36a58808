package httpd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// diffMaxHeaderBytes is small so that the 431 limit (it plus 4096 bytes of
// slack) can be probed from both sides without megabyte requests.
const diffMaxHeaderBytes = 1024

var largeBody = bytes.Repeat([]byte("0123456789abcdef"), 4096)

// diffHandler runs behind both servers in TestDiff; the path picks what the
// handler does, so that each case exercises one framing decision.
func diffHandler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/html":
		io.WriteString(w, "<!DOCTYPE html><html><body>hi</body></html>")
	case "/empty":
	case "/large":
		w.Write(largeBody)
	case "/flush":
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		io.WriteString(w, "b")
	case "/echo":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read: "+err.Error(), 500)
			return
		}
		w.Write(b)
	case "/noread":
		io.WriteString(w, "ok")
	case "/cl":
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	case "/cl-short":
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "hello")
	case "/cl-over":
		w.Header().Set("Content-Length", "3")
		io.WriteString(w, "hello")
	case "/204":
		w.Header().Set("Content-Length", "5")
		w.WriteHeader(http.StatusNoContent)
		io.WriteString(w, "x")
	case "/304":
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", "5")
		w.Header().Set("ETag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
		io.WriteString(w, "x")
	case "/twice":
		w.WriteHeader(http.StatusCreated)
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "x")
	case "/103":
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "ok")
	case "/nil-ctype":
		w.Header()["Content-Type"] = nil
		io.WriteString(w, "<html>x")
	case "/content-encoding":
		w.Header().Set("Content-Encoding", "gzip")
		io.WriteString(w, "<html>x")
	case "/handler-close":
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	case "/flush-empty":
		w.WriteHeader(http.StatusAccepted)
		w.(http.Flusher).Flush()
	case "/404":
		w.WriteHeader(http.StatusNotFound)
	case "/trailer":
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	case "/trailer-prefix":
		io.WriteString(w, "body")
		w.Header().Set(http.TrailerPrefix+"X-Late", "v")
	case "/set-date":
		w.Header().Set("Date", "Mon, 01 Jan 2001 00:00:00 GMT")
		io.WriteString(w, "dated")
	case "/slow":
		// Longer than the delay after which a server may probe the
		// connection for a disconnect, so pipelined bytes behind this
		// request must not be taken for one.
		time.Sleep(50 * time.Millisecond)
		if err := r.Context().Err(); err != nil {
			fmt.Fprintf(w, "context: %v", err)
			return
		}
		io.WriteString(w, "alive")
	case "/reqinfo":
		body, err := io.ReadAll(r.Body)
		host, port, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "method=%s host=%q uri=%q url=%q proto=%s cl=%d te=%q close=%v remote=%s port=%v body=%q err=%v trailer=%v\n",
			r.Method, r.Host, r.RequestURI, r.URL.String(), r.Proto, r.ContentLength, r.TransferEncoding, r.Close,
			host, port != "", body, err, r.Trailer)
		for _, k := range slices.Sorted(maps.Keys(r.Header)) {
			fmt.Fprintf(w, "%s=%q\n", k, r.Header[k])
		}
	default:
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	}
}

type diffCase struct {
	name    string
	raw     string
	methods []string // one per request, for reading HEAD responses; defaults to the first request's method
	want    []int    // statuses net/http sends, interim ones included
	loose   bool     // a server-generated error whose body text may differ
}

const diffH11 = " HTTP/1.1\r\nHost: example.com\r\n"

var diffCases = []diffCase{
	{name: "GET", raw: "GET /" + diffH11 + "\r\n", want: []int{200}},
	{name: "GET sniffed html", raw: "GET /html" + diffH11 + "\r\n", want: []int{200}},
	{name: "GET empty", raw: "GET /empty" + diffH11 + "\r\n", want: []int{200}},
	{name: "HEAD", raw: "HEAD /" + diffH11 + "\r\n", want: []int{200}},
	{name: "HEAD empty", raw: "HEAD /empty" + diffH11 + "\r\n", want: []int{200}},
	{name: "HEAD large", raw: "HEAD /large" + diffH11 + "\r\n", want: []int{200}},
	{name: "HEAD handler CL", raw: "HEAD /cl" + diffH11 + "\r\n", want: []int{200}},
	{name: "POST CL body", raw: "POST /echo" + diffH11 + "Content-Length: 11\r\nContent-Type: text/plain\r\n\r\nhello world", want: []int{200}},
	{name: "POST chunked body", raw: "POST /echo" + diffH11 + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", want: []int{200}},
	{name: "POST chunked trailer", raw: "POST /reqinfo" + diffH11 + "Transfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n0\r\nX-T: v\r\n\r\n", want: []int{200}},
	{name: "pipelined", raw: "GET /a" + diffH11 + "\r\nHEAD /b" + diffH11 + "\r\nPOST /echo" + diffH11 + "Content-Length: 3\r\n\r\nabcGET /c" + diffH11 + "\r\n",
		methods: []string{"GET", "HEAD", "POST", "GET"}, want: []int{200, 200, 200, 200}},
	{name: "pipelined behind slow", raw: "GET /slow" + diffH11 + "\r\nGET /after" + diffH11 + "\r\n", methods: []string{"GET", "GET"}, want: []int{200, 200}},
	{name: "pipelined unread body", raw: "POST /noread" + diffH11 + "Content-Length: 5\r\n\r\nhelloGET /next" + diffH11 + "\r\n", methods: []string{"POST", "GET"}, want: []int{200, 200}},
	{name: "CRLF after POST", raw: "POST /echo" + diffH11 + "Content-Length: 3\r\n\r\nabc\r\nGET /next" + diffH11 + "\r\n", methods: []string{"POST", "GET"}, want: []int{200, 200}},
	{name: "HTTP/1.0", raw: "GET / HTTP/1.0\r\n\r\n", want: []int{200}},
	{name: "HTTP/1.0 keep-alive", raw: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", want: []int{200}},
	{name: "HTTP/1.0 keep-alive HEAD", raw: "HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", want: []int{200}},
	{name: "HTTP/1.0 keep-alive large", raw: "GET /large HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", want: []int{200}},
	{name: "HTTP/1.0 flush", raw: "GET /flush HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", want: []int{200}},
	{name: "HTTP/1.0 TE ignored", raw: "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", want: []int{200}},
	{name: "HTTP/1.2", raw: "GET / HTTP/1.2\r\nHost: x\r\n\r\n", want: []int{200}},
	{name: "Connection close", raw: "GET /" + diffH11 + "Connection: close\r\n\r\n", want: []int{200}},
	{name: "Connection keep-alive, close", raw: "GET /large" + diffH11 + "Connection: keep-alive, close\r\n\r\n", want: []int{200}},
	{name: "Connection close pipelined", raw: "GET /" + diffH11 + "Connection: close\r\n\r\nGET /second" + diffH11 + "\r\n", methods: []string{"GET", "GET"}, want: []int{200}},
	{name: "handler Connection close", raw: "GET /handler-close" + diffH11 + "\r\n", want: []int{200}},
	{name: "missing Host 1.1", raw: "GET / HTTP/1.1\r\n\r\n", want: []int{400}, loose: true},
	{name: "missing Host 1.0", raw: "GET /reqinfo HTTP/1.0\r\n\r\n", want: []int{200}},
	{name: "empty Host", raw: "GET /reqinfo HTTP/1.1\r\nHost:\r\n\r\n", want: []int{200}},
	{name: "duplicate Host", raw: "GET / HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n", want: []int{400}, loose: true},
	{name: "Host bad chars", raw: "GET / HTTP/1.1\r\nHost: exa<mple.com\r\n\r\n", want: []int{400}, loose: true},
	{name: "bad header name", raw: "GET /" + diffH11 + "Bad Header: x\r\n\r\n", want: []int{400}, loose: true},
	{name: "header value control char", raw: "GET /" + diffH11 + "X-A: a\x01b\r\n\r\n", want: []int{400}, loose: true},
	{name: "obs-fold", raw: "GET /reqinfo" + diffH11 + "X-Fold: a\r\n b\r\n\r\n", want: []int{200}},
	{name: "CL and chunked", raw: "POST /echo" + diffH11 + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", want: []int{200}},
	{name: "two different CL", raw: "POST /echo" + diffH11 + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", want: []int{400}, loose: true},
	{name: "two equal CL", raw: "POST /echo" + diffH11 + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", want: []int{200}},
	{name: "negative CL", raw: "POST /echo" + diffH11 + "Content-Length: -1\r\n\r\n", want: []int{400}, loose: true},
	{name: "TE gzip", raw: "POST /echo" + diffH11 + "Transfer-Encoding: gzip\r\n\r\n", want: []int{501}, loose: true},
	{name: "TE twice", raw: "POST /echo" + diffH11 + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: []int{501}, loose: true},
	{name: "HTTP/2.0", raw: "GET / HTTP/2.0\r\nHost: x\r\n\r\n", want: []int{505}, loose: true},
	{name: "HTTP/3.0", raw: "GET / HTTP/3.0\r\nHost: x\r\n\r\n", want: []int{505}, loose: true},
	{name: "bad proto", raw: "GET / HTTPS/1.1\r\nHost: x\r\n\r\n", want: []int{400}, loose: true},
	{name: "bad request line", raw: "GET /\r\nHost: x\r\n\r\n", want: []int{400}, loose: true},
	{name: "bad escape in path", raw: "GET /%zz" + diffH11 + "\r\n", want: []int{400}, loose: true},
	// net/http reads at most MaxHeaderBytes+4096 bytes of request line and
	// headers: 5120 here.
	{name: "headers at limit", raw: paddedRequest(diffMaxHeaderBytes + 4096), want: []int{200}},
	{name: "headers one over limit", raw: paddedRequest(diffMaxHeaderBytes + 4096 + 1), want: []int{431}, loose: true},
	{name: "headers 9000 bytes", raw: paddedRequest(9000), want: []int{431}, loose: true},
	{name: "absolute-form URI", raw: "GET http://api.example.com/reqinfo?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n", want: []int{200}},
	{name: "request info", raw: "GET /reqinfo?a=b&c=%20" + diffH11 + "x-lower: 1\r\nAccept: a\r\nAccept: b\r\n\r\n", want: []int{200}},
	{name: "absolute-form without Host", raw: "GET http://api.example.com/ HTTP/1.1\r\n\r\n", want: []int{400}, loose: true},
	{name: "bad chunked body", raw: "POST /echo" + diffH11 + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", want: []int{500}},
	{name: "OPTIONS *", raw: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", want: []int{200}},
	{name: "large without CL", raw: "GET /large" + diffH11 + "\r\n", want: []int{200}},
	{name: "flush", raw: "GET /flush" + diffH11 + "\r\n", want: []int{200}},
	{name: "handler CL", raw: "GET /cl" + diffH11 + "\r\n", want: []int{200}},
	{name: "handler CL short", raw: "GET /cl-short" + diffH11 + "\r\n", want: []int{200}},
	{name: "handler CL over", raw: "GET /cl-over" + diffH11 + "\r\n", want: []int{200}},
	{name: "HEAD handler CL short", raw: "HEAD /cl-short" + diffH11 + "\r\n", want: []int{200}},
	{name: "204 with write", raw: "GET /204" + diffH11 + "\r\n", want: []int{204}},
	{name: "304", raw: "GET /304" + diffH11 + "\r\n", want: []int{304}},
	{name: "WriteHeader twice", raw: "GET /twice" + diffH11 + "\r\n", want: []int{201}},
	{name: "103 early hints", raw: "GET /103" + diffH11 + "\r\n", want: []int{103, 200}},
	{name: "nil Content-Type", raw: "GET /nil-ctype" + diffH11 + "\r\n", want: []int{200}},
	{name: "Content-Encoding set", raw: "GET /content-encoding" + diffH11 + "\r\n", want: []int{200}},
	{name: "flush without body", raw: "GET /flush-empty" + diffH11 + "\r\n", want: []int{202}},
	{name: "status only", raw: "GET /404" + diffH11 + "\r\n", want: []int{404}},
	{name: "declared trailer", raw: "GET /trailer" + diffH11 + "\r\n", want: []int{200}},
	{name: "TrailerPrefix trailer", raw: "GET /trailer-prefix" + diffH11 + "\r\n", want: []int{200}},
	{name: "handler Date", raw: "GET /set-date" + diffH11 + "\r\n", want: []int{200}},
	{name: "unread small body", raw: "POST /noread" + diffH11 + "Content-Length: 100000\r\n\r\n" + strings.Repeat("x", 100000), want: []int{200}},
	{name: "unread chunked body", raw: "POST /noread" + diffH11 + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", want: []int{200}},
	{name: "unread large body", raw: "POST /noread" + diffH11 + "Content-Length: 300000\r\n\r\n" + strings.Repeat("x", 300000), want: []int{200}},
	{name: "Expect 100 read", raw: "POST /echo" + diffH11 + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", want: []int{100, 200}},
	{name: "Expect 100 not read", raw: "POST /noread" + diffH11 + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n", want: []int{200}},
	{name: "Expect 100 zero CL", raw: "POST /echo" + diffH11 + "Expect: 100-continue\r\nContent-Length: 0\r\n\r\n", want: []int{200}},
	{name: "Expect 100 HTTP/1.0", raw: "POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", want: []int{200}},
	{name: "Expect other", raw: "POST /echo" + diffH11 + "Expect: something-else\r\nContent-Length: 5\r\n\r\nhello", want: []int{417}, loose: true},
}

// paddedRequest is a GET whose request line and headers take n bytes.
func paddedRequest(n int) string {
	head, tail := "GET /"+diffH11+"X-Pad: ", "\r\n\r\n"
	return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
}

// observedResponse is what a client can observe of one response. The Date header's
// value is replaced by "<now>" when the server generated it.
type observedResponse struct {
	Proto   string
	Status  int
	Header  http.Header
	Chunked bool
	Close   bool
	Body    string
	BodyErr string
	Trailer http.Header
}

type diffOutcome struct {
	Resps []observedResponse
	Err   string // reading a response failed
	After string // "open", "closed" or "hung": whether a further request on the connection is answered
}

// TestDiff sends the same raw bytes to net/http's server and to Server
// running the same handler, and requires the client-visible results to
// match.
func TestDiff(t *testing.T) {
	ref := startServer(t, testImpls[0], http.HandlerFunc(diffHandler), testConfig{MaxHeaderBytes: diffMaxHeaderBytes, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second})
	got := startServer(t, testImpls[1], http.HandlerFunc(diffHandler), testConfig{MaxHeaderBytes: diffMaxHeaderBytes, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second})
	for _, tc := range diffCases {
		t.Run(tc.name, func(t *testing.T) {
			methods := tc.methods
			if methods == nil {
				methods = []string{strings.Fields(tc.raw)[0]}
			}
			want := diffExchange(t, ref.addr, tc.raw, methods)
			if s := diffStatuses(want); !slices.Equal(s, tc.want) {
				t.Fatalf("net/http answered %v, the case expects %v; fix the case:\n%s", s, tc.want, want)
			}
			have := diffExchange(t, got.addr, tc.raw, methods)
			match := reflect.DeepEqual(want, have)
			if tc.loose {
				match = reflect.DeepEqual(want.loose(), have.loose())
			}
			if !match {
				t.Errorf("request %q\nnet/http:\n%s\nhttpd:\n%s", quoteShort(tc.raw), want, have)
			}
		})
	}
}

// diffExchange writes raw on a new connection, reads one final response per
// method (with any 1xx before it), then probes whether the server still
// answers on that connection.
func diffExchange(t *testing.T, addr, raw string, methods []string) diffOutcome {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// Writing from a goroutine keeps a server that answers before reading
	// a large body from deadlocking against this client.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		io.WriteString(c, raw)
	}()
	br := bufio.NewReader(c)
	var o diffOutcome
read:
	for _, m := range methods {
		for {
			resp, err := http.ReadResponse(br, &http.Request{Method: m})
			if err != nil {
				o.Err = errClass(err)
				break read
			}
			body, err := io.ReadAll(resp.Body)
			r := observedResponse{
				Proto:   resp.Proto,
				Status:  resp.StatusCode,
				Header:  resp.Header,
				Chunked: slices.Equal(resp.TransferEncoding, []string{"chunked"}),
				Close:   resp.Close,
				Body:    string(body),
			}
			if err != nil {
				r.BodyErr = errClass(err)
			}
			if len(resp.Trailer) > 0 {
				r.Trailer = resp.Trailer
			}
			if d, err := http.ParseTime(r.Header.Get("Date")); err == nil && time.Since(d).Abs() < time.Hour {
				r.Header.Set("Date", "<now>")
			}
			o.Resps = append(o.Resps, r)
			if resp.StatusCode >= 200 || resp.StatusCode == 101 {
				break
			}
		}
	}
	<-wrote
	o.After = probeConn(c, br)
	return o
}

func probeConn(c net.Conn, br *bufio.Reader) string {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET /probe HTTP/1.1\r\nHost: probe\r\n\r\n"); err != nil {
		return "closed"
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return "hung"
		}
		return "closed"
	}
	io.Copy(io.Discard, resp.Body)
	return "open"
}

// errClass names an error without the addresses and ports in its text.
func errClass(err error) string {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	var ne *net.OpError
	if errors.As(err, &ne) {
		return "net error: " + ne.Err.Error()
	}
	return err.Error()
}

func diffStatuses(o diffOutcome) []int {
	var s []int
	for _, r := range o.Resps {
		s = append(s, r.Status)
	}
	return s
}

// loose keeps what must match even when the error body text may not: the
// statuses, the Content-Type, whether each response announced the close,
// and the connection's fate.
func (o diffOutcome) loose() diffOutcome {
	l := diffOutcome{Err: o.Err, After: o.After}
	for _, r := range o.Resps {
		l.Resps = append(l.Resps, observedResponse{Status: r.Status, Close: r.Close, Header: http.Header{"Content-Type": r.Header["Content-Type"]}})
	}
	return l
}

func (o diffOutcome) String() string {
	var b strings.Builder
	for _, r := range o.Resps {
		fmt.Fprintf(&b, "  %s %d chunked=%v close=%v body=%s", r.Proto, r.Status, r.Chunked, r.Close, quoteShort(r.Body))
		if r.BodyErr != "" {
			fmt.Fprintf(&b, " body error=%s", r.BodyErr)
		}
		if r.Trailer != nil {
			fmt.Fprintf(&b, " trailer=%v", r.Trailer)
		}
		b.WriteString("\n")
		for _, k := range slices.Sorted(maps.Keys(r.Header)) {
			fmt.Fprintf(&b, "    %s: %q\n", k, r.Header[k])
		}
	}
	if o.Err != "" {
		fmt.Fprintf(&b, "  read error: %s\n", o.Err)
	}
	fmt.Fprintf(&b, "  connection afterwards: %s", o.After)
	return b.String()
}

func quoteShort(s string) string {
	if len(s) <= 200 {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q...(%d bytes)", s[:200], len(s))
}
