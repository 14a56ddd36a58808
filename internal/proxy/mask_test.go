package proxy

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestMaskStreamSplits masks a secret wherever the pieces of a body split
// it, including one byte at a time.
func TestMaskStreamSplits(t *testing.T) {
	const secret = "sk_test_0123456789abcdef"
	body := "head " + secret + " middle " + secret + secret + " tail " + secret
	want := strings.ReplaceAll(body, secret, maskOf(secret))
	for size := 1; size <= len(body); size++ {
		m := &maskStream{mask: []byte(secret), masked: []byte(maskOf(secret))}
		var out bytes.Buffer
		for i := 0; i < len(body); i += size {
			out.Write(m.next([]byte(body[i:min(i+size, len(body))]), false))
		}
		out.Write(m.next(nil, true))
		if out.String() != want {
			t.Fatalf("pieces of %d: got %q, want %q", size, out.String(), want)
		}
	}
}

func TestGunzippedNotGzip(t *testing.T) {
	res := &http.Response{Header: http.Header{"Content-Encoding": {"gzip"}},
		Body: io.NopCloser(strings.NewReader("plainly not gzip at all"))}
	if _, ok := gunzipped(res); ok {
		t.Fatal("accepted a body that is not gzip")
	}
	if b, _ := io.ReadAll(res.Body); string(b) != "plainly not gzip at all" {
		t.Fatalf("body after a failed decode = %q", b)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = io.WriteString(zw, "hello")
	_ = zw.Close()
	res = &http.Response{Header: http.Header{"Content-Encoding": {"GZIP"}}, Body: io.NopCloser(&z)}
	rc, ok := gunzipped(res)
	if !ok {
		t.Fatal("did not decode gzip")
	}
	if b, _ := io.ReadAll(rc); string(b) != "hello" {
		t.Fatalf("decoded %q", b)
	}
}

func TestAcceptEncoding(t *testing.T) {
	for in, want := range map[string]string{
		"gzip": "gzip", "identity": "identity", "br": "", "*": "", "gzip, deflate, br, zstd": "gzip",
		"br;q=1.0, GZIP;q=0.5, identity;q=0.1": "GZIP;q=0.5, identity;q=0.1",
	} {
		got := strings.Join(acceptEncoding([]string{in}), "")
		if got != want {
			t.Errorf("acceptEncoding(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMaskEchoThatSpellsTheKeyAgain pins a finding of FuzzMaskBody: the
// masked form ends with the key's last characters, so one pass of
// replacement could leave the key spelled by the mask and the text after
// the echo ("aaaaaaaaa" in "aaaaaaaaaaaaaa" became "…aaaaaaaaa").
func TestMaskEchoThatSpellsTheKeyAgain(t *testing.T) {
	for _, tc := range []struct{ secret, body string }{
		{"aaaaaaaaa", "aaaaaaaaaaaaaa"},
		{"sk_abcd_sk_abcd", "error: sk_abcd_sk_abcd_sk_abcd"},
		{"abcabcabcabc", strings.Repeat("abc", 40)},
	} {
		masked := maskOf(tc.secret)
		if got := maskAll([]byte(tc.body), []byte(tc.secret), []byte(masked)); strings.Contains(string(got), tc.secret) {
			t.Errorf("maskAll(%q) = %q: still holds the key", tc.body, got)
		}
		for size := 1; size <= len(tc.body); size++ {
			m := &maskStream{mask: []byte(tc.secret), masked: []byte(masked)}
			var out bytes.Buffer
			for i := 0; i < len(tc.body); i += size {
				out.Write(m.next([]byte(tc.body[i:min(i+size, len(tc.body))]), false))
			}
			out.Write(m.next(nil, true))
			if strings.Contains(out.String(), tc.secret) {
				t.Errorf("streamed in pieces of %d: %q still holds the key", size, out.String())
			}
		}
		h := http.Header{"X-Echo": {tc.body}}
		maskHeaders(h, tc.secret, masked)
		if strings.Contains(h.Get("X-Echo"), tc.secret) {
			t.Errorf("header %q still holds the key", h.Get("X-Echo"))
		}
	}
}
