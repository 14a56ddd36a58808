package vault

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// KeySize is the length of every key this package handles: the root key,
// the derived key-encryption key and the per-workspace data keys are all
// AES-256 keys.
const KeySize = 32

// ErrInvalidRootKey is wrapped by every error ParseRootKey returns, so
// configuration code can recognise the failure without matching text.
var ErrInvalidRootKey = errors.New("invalid ENCRYPTION_KEY")

const acceptedRootKeyForms = "expected 32 raw bytes, 64 hex characters, or 44 standard base64 characters decoding to 32 bytes"

// ParseRootKey decodes ENCRYPTION_KEY. The form is chosen by length alone,
// so a given value can only ever mean one key. Errors describe the length
// and the accepted forms but never the value: they end up in startup logs,
// and the decoders' own errors are not used because encoding/hex quotes the
// offending character.
//
// The value is taken as given, without trimming: a raw key may legitimately
// contain whitespace bytes, and silently dropping them would change the key.
func ParseRootKey(s string) ([]byte, error) {
	switch len(s) {
	case KeySize:
		return []byte(s), nil
	case hex.EncodedLen(KeySize):
		key, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: 64 characters but not valid hex; %s", ErrInvalidRootKey, acceptedRootKeyForms)
		}
		return key, nil
	case base64.StdEncoding.EncodedLen(KeySize):
		// Strict, because the lenient decoder accepts several spellings of
		// one key (non-zero padding bits). Both skip embedded newlines, which
		// the length check catches: 44 characters with a newline cannot hold
		// 32 bytes.
		key, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(key) != KeySize {
			return nil, fmt.Errorf("%w: 44 characters but not standard base64 of 32 bytes; %s", ErrInvalidRootKey, acceptedRootKeyForms)
		}
		return key, nil
	case 0:
		return nil, fmt.Errorf("%w: empty; %s", ErrInvalidRootKey, acceptedRootKeyForms)
	default:
		return nil, fmt.Errorf("%w: got %d bytes; %s", ErrInvalidRootKey, len(s), acceptedRootKeyForms)
	}
}
