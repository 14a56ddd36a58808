// Package web serves the wallet's face: the landing page and the
// dashboard, one HTML shell with hand-written ES modules and CSS embedded
// in the binary, so there is no build step. The pages talk to the same
// HTTP API as every client, authenticated by the session cookie that
// POST /auth/session sets (see internal/auth's Cookies).
package web

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"

	"github.com/apikeywallet/apiwallet"
)

//go:embed static
var files embed.FS

// Static is the tree under /static/, for tests that check what is served.
var Static, _ = fs.Sub(files, "static")

// PageCSP is the Content-Security-Policy of every page and asset: script
// and style from the wallet itself only, no inline script, no style
// attributes, no plugins, no <base>, never inside a frame.
const PageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; manifest-src 'self'; form-action 'self'; base-uri 'none'; " +
	"frame-ancestors 'none'; object-src 'none'"

// Handler serves GET /, /app/... (the shell; the pages route in the
// browser) and /static/... (the assets).
type Handler struct {
	assets http.Handler
}

// New returns the handler.
func New() *Handler {
	return &Handler{assets: http.StripPrefix("/static", http.FileServerFS(Static))}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Set, not Add: the API's own defaults (CSP default-src 'none' for
	// JSON) are replaced for pages.
	hd.Set("Content-Security-Policy", PageCSP)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/" || p == "/app" || strings.HasPrefix(p, "/app/"):
		hd.Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, Static, "index.html")
	case strings.HasPrefix(p, "/static/") && !strings.HasSuffix(p, "/") && p != "/static/index.html" && exists(p):
		// Revalidated on each load: the binary may have been upgraded.
		hd.Set("Cache-Control", "no-cache")
		h.assets.ServeHTTP(w, r)
	default:
		notFound(w, r)
	}
}

func exists(p string) bool {
	_, err := fs.Stat(Static, strings.TrimPrefix(p, "/static/"))
	return err == nil
}

// notFound answers like every other wallet 404: an RFC 9457 problem.
func notFound(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "application/problem+json")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": apiwallet.ProblemBase + "not-found",
		"title": http.StatusText(http.StatusNotFound), "status": http.StatusNotFound,
		"detail": "no page or asset here", "instance": r.URL.Path, "requestId": hd.Get("X-Request-Id")})
}
