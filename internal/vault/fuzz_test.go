package vault

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// FuzzParseRootKey decodes arbitrary ENCRYPTION_KEY values. The property:
// an accepted value is a 32-byte key, the form is fixed by the length
// alone (so one value never means two keys), encoding the key back gives
// the value (up to the case of hex digits), and a refusal wraps
// ErrInvalidRootKey without quoting any of the value.
func FuzzParseRootKey(f *testing.F) {
	for _, s := range []string{
		strings.Repeat("ab", 32), strings.Repeat("AB", 32), strings.Repeat("0", 64), strings.Repeat("g", 64),
		base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))),
		"a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=", "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2t=",
		"a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s\n", "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s ",
		base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xff", 32))),
		strings.Repeat("x", 32), strings.Repeat(" ", 32), "", "short", strings.Repeat("ab", 32) + "\n",
		"0x" + strings.Repeat("ab", 31), strings.Repeat("\x00", 32), strings.Repeat("é", 16),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, err := ParseRootKey(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidRootKey) || key != nil {
				t.Fatalf("ParseRootKey(%q) = %x, %v", s, key, err)
			}
			// The message may name lengths and forms, never the value.
			if len(s) >= 4 && strings.Contains(err.Error(), s) {
				t.Fatalf("the error quotes the value: %v", err)
			}
			for i := 0; i+8 <= len(s); i++ {
				if strings.Contains(err.Error(), s[i:i+8]) && !strings.Contains(acceptedRootKeyForms+"ENCRYPTION_KEY", s[i:i+8]) {
					t.Fatalf("the error quotes part of the value: %v", err)
				}
			}
			return
		}
		if len(key) != KeySize {
			t.Fatalf("ParseRootKey(%q) gave %d bytes", s, len(key))
		}
		switch len(s) {
		case KeySize:
			if string(key) != s {
				t.Fatalf("a raw key changed: %q -> %q", s, key)
			}
		case hex.EncodedLen(KeySize):
			if hex.EncodeToString(key) != strings.ToLower(s) {
				t.Fatalf("hex %q decoded to %x", s, key)
			}
		case base64.StdEncoding.EncodedLen(KeySize):
			if base64.StdEncoding.EncodeToString(key) != s {
				t.Fatalf("base64 %q decoded to %x, which encodes otherwise: one key, two spellings", s, key)
			}
		default:
			t.Fatalf("ParseRootKey accepted a value of %d bytes", len(s))
		}
	})
}
