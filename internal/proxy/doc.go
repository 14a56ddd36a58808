// Package proxy forwards an app's call to the upstream API it names,
// injecting one of the workspace's stored keys, and streams the answer
// back.
//
// The hot path makes no database round trip in the steady state: the
// caller's credential, the workspace's key set for the service and the
// decrypted key material are cached in memory for a short time, and every
// cache is emptied at once when anything they derive from changes (an
// Epoch bump: a revoked token, a removed member, a rotated key, including
// on other instances through Redis). Usage is handed to an asynchronous
// recorder. Upstream calls go through the one http.RoundTripper the proxy
// is given: net/http's Transport, tuned for a gateway (NewTransport).
//
// A call is one value (call.go) carried through authenticate → limit →
// read the body → route → forward → deliver → record. A stage that ends
// the call returns an *apiwallet.Error, which internal/api writes like any
// other problem response. The caches live in cache.go (the TTL and epoch
// mechanism), keyset.go (key sets), secrets.go (decrypted keys),
// counters.go (per-key quota counts) and toucher.go (key use, written off
// the hot path).
//
// Safety rules: the upstream host is always the service's base URL; a path
// that could escape it (dot segments, encoded slashes or dots, backslashes,
// control characters) is refused before anything is sent; hop-by-hop
// headers, the client's own credentials and the wallet's headers are
// stripped; upstream Set-Cookie is dropped; and the injected key is masked
// wherever an upstream echoes it in response headers or an error body.
package proxy
