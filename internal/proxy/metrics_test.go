package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Real transport failures fall in the classes the upstream-errors metric
// names.
func TestUpstreamErrorClasses(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/cut":
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tr := NewTransport(TransportOptions{ResponseHeaderTimeout: 50 * time.Millisecond})
	defer tr.CloseIdleConnections()
	for _, c := range []struct {
		url  string
		want int
	}{
		{srv.URL + "/slow", upTimeout},
		{srv.URL + "/cut", upReset},
		{closedURL + "/", upConnect},
	} {
		req, _ := http.NewRequest("GET", c.url, nil)
		res, err := tr.RoundTrip(req)
		if err == nil {
			res.Body.Close()
			t.Fatalf("%s: no error", c.url)
		}
		if got := upstreamError(err); got != c.want {
			t.Errorf("%s: %v classed %s, want %s", c.url, err, upErrorNames[got], upErrorNames[c.want])
		}
	}
}
