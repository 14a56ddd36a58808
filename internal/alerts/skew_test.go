package alerts

import (
	"errors"
	"testing"
	"time"
)

// A receiver whose clock is off by less than the tolerance, either way,
// accepts a delivery; beyond it the delivery is refused as stale or
// replayed, even with a correct signature.
func TestVerifyClockSkew(t *testing.T) {
	secret, body := []byte("whsec-skew-test"), []byte(`{"id":"alr_1","type":"alert"}`)
	sent := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	header := Sign(secret, sent, body)
	const tolerance = 5 * time.Minute
	for _, c := range []struct {
		skew time.Duration // the receiver's clock minus the sender's
		want error
	}{
		{0, nil}, {tolerance - time.Second, nil}, {-tolerance + time.Second, nil},
		{tolerance + time.Second, ErrTooOld}, {-tolerance - time.Second, ErrTooOld},
	} {
		if err := Verify(header, body, secret, tolerance, sent.Add(c.skew)); !errors.Is(err, c.want) {
			t.Errorf("receiver clock %+v: %v, want %v", c.skew, err, c.want)
		}
	}
}
