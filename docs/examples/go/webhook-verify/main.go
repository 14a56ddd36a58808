// Command webhook-verify receives the wallet's alert webhooks and checks
// each one's X-Wallet-Signature before trusting it:
//
//	X-Wallet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
//
// WEBHOOK_SECRET is the whsec_… secret shown once by PUT /alerts/settings;
// HOST and PORT are where to listen (default: every interface, 8080). A valid alert is answered 204,
// anything else 400, so the wallet retries only real delivery failures.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// tolerance is how far the signed time may be from now: it bounds how long
// a captured delivery could be replayed.
const tolerance = 5 * time.Minute

// verify checks header against the raw body: the HMAC of "<t>.<body>" must
// equal one of the v1 values, compared in constant time, and t must be
// recent.
func verify(header string, body, secret []byte, now time.Time) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("no valid X-Wallet-Signature header")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("signature timestamp too old or in the future")
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return errors.New("signature does not match")
}

// alert is the part of the payload this receiver uses.
type alert struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func main() {
	secret := []byte(os.Getenv("WEBHOOK_SECRET"))
	if len(secret) == 0 {
		log.Fatal("set WEBHOOK_SECRET (whsec_…)")
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	addr := net.JoinHostPort(os.Getenv("HOST"), port)
	http.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		// Verify the bytes as received: re-encoding parsed JSON would not
		// reproduce them.
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read the body", http.StatusBadRequest)
			return
		}
		if err := verify(r.Header.Get("X-Wallet-Signature"), body, secret, time.Now()); err != nil {
			fmt.Println("rejected:", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var a alert
		if err := json.Unmarshal(body, &a); err != nil {
			http.Error(w, "not an alert", http.StatusBadRequest)
			return
		}
		// X-Wallet-Alert-Id is the same on every attempt: deduplicate by it.
		fmt.Printf("verified alert %s (%s): %s\n", a.ID, a.Kind, a.Message)
		w.WriteHeader(http.StatusNoContent)
	})
	log.Printf("listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
