package vault

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

const (
	// sealedFormatV1 leads every sealed secret so a future layout can be
	// told apart from this one without guessing.
	sealedFormatV1 = 1

	sealedMinSize = 1 + nonceSize + tagSize

	// The data key is never used directly: sealing and fingerprinting each
	// get a key of their own derived from it, so the two uses cannot
	// interfere with each other.
	infoSeal        = "apiwallet/secret/v1"
	infoFingerprint = "apiwallet/fingerprint/v1"
	adSecret        = "apiwallet/secret/v1|"
)

// AAD names the row a sealed secret belongs to. It is authenticated with the
// ciphertext, so a ciphertext copied to another key row or another
// workspace does not open there.
type AAD struct {
	WorkspaceID string
	KeyID       string
}

// bytes length-prefixes each field: with plain concatenation {"ab","c"} and
// {"a","bc"} would authenticate the same bytes, letting one row's secret
// open as another's.
func (a AAD) bytes() []byte {
	ad := make([]byte, 0, 1+len(adSecret)+2*binary.MaxVarintLen64+len(a.WorkspaceID)+len(a.KeyID))
	ad = append(ad, sealedFormatV1)
	ad = append(ad, adSecret...)
	ad = binary.AppendUvarint(ad, uint64(len(a.WorkspaceID)))
	ad = append(ad, a.WorkspaceID...)
	ad = binary.AppendUvarint(ad, uint64(len(a.KeyID)))
	return append(ad, a.KeyID...)
}

// DecryptError is the only error Open returns. It names the key that could
// not be opened and nothing else: no plaintext, no key material and no
// ciphertext, so it is safe to log and to wrap.
type DecryptError struct {
	KeyID string

	// reason is always one of this package's constant strings; the zero
	// value means authentication failed.
	reason string
}

const reasonAuth = "authentication failed (ciphertext does not belong to this key or workspace, or the data key was destroyed)"

func (e *DecryptError) Error() string {
	reason := e.reason
	if reason == "" {
		reason = reasonAuth
	}
	return "decrypt key " + e.KeyID + ": " + reason
}

// Seal encrypts a secret under a workspace data key, bound to aad. Every call
// draws a fresh random nonce, so sealing the same secret twice gives
// unrelated ciphertexts. Both ids are required: an empty one would leave the
// ciphertext unbound to its owner or its row.
func Seal(dataKey []byte, aad AAD, plaintext []byte) ([]byte, error) {
	if aad.WorkspaceID == "" || aad.KeyID == "" {
		return nil, errors.New("vault: seal: workspace id and key id are required")
	}
	if len(dataKey) != KeySize {
		return nil, fmt.Errorf("vault: seal key %s: data key must be %d bytes, got %d", aad.KeyID, KeySize, len(dataKey))
	}
	aead, err := sealAEAD(dataKey)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1, sealedMinSize+len(plaintext))
	out[0] = sealedFormatV1
	return aead.Seal(out, nil, plaintext, aad.bytes()), nil
}

// Open decrypts what Seal produced for the same data key and aad. Any
// failure is a *DecryptError.
func Open(dataKey []byte, aad AAD, sealed []byte) ([]byte, error) {
	if len(dataKey) != KeySize {
		return nil, &DecryptError{KeyID: aad.KeyID, reason: "invalid data key length"}
	}
	if len(sealed) < sealedMinSize {
		return nil, &DecryptError{KeyID: aad.KeyID, reason: "ciphertext too short"}
	}
	if sealed[0] != sealedFormatV1 {
		return nil, &DecryptError{KeyID: aad.KeyID, reason: "unsupported ciphertext format"}
	}
	aead, err := sealAEAD(dataKey)
	if err != nil {
		return nil, &DecryptError{KeyID: aad.KeyID, reason: "invalid data key"}
	}
	plain, err := aead.Open(nil, nil, sealed[1:], aad.bytes())
	if err != nil {
		return nil, &DecryptError{KeyID: aad.KeyID}
	}
	return plain, nil
}

func sealAEAD(dataKey []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, dataKey, nil, infoSeal, KeySize)
	if err != nil {
		return nil, fmt.Errorf("vault: derive sealing key: %w", err)
	}
	defer Zero(key)
	return newAEAD(key)
}

// Fingerprint identifies a secret within its workspace so that storing the
// same upstream key twice can be detected without keeping or comparing
// plaintext. It is keyed from the workspace data key rather than the root,
// for two reasons: it survives master-key rotation (which rewraps, but never
// changes, data keys), and it is crypto-shredded together with the data
// key, so a deleted workspace's fingerprints can no longer be tested
// against guesses. Unlike a plain hash, it cannot be brute-forced from a
// database dump alone.
//
// dataKey must be a data key from NewDataKey or UnwrapDataKey; any other
// length is a programming error and panics rather than returning a
// fingerprint that could collide with another.
func Fingerprint(dataKey []byte, secret string) string {
	if len(dataKey) != KeySize {
		panic(fmt.Sprintf("vault: Fingerprint: data key must be %d bytes, got %d", KeySize, len(dataKey)))
	}
	key, err := hkdf.Key(sha256.New, dataKey, nil, infoFingerprint, KeySize)
	if err != nil {
		panic("vault: Fingerprint: derive key: " + err.Error())
	}
	defer Zero(key)
	msg := []byte(secret)
	defer Zero(msg)
	mac := hmac.New(sha256.New, key)
	mac.Write(msg)
	return hex.EncodeToString(mac.Sum(nil))
}

// Zero overwrites key material once it is no longer needed, shortening the
// time it sits in memory. It is best effort: it cannot reach copies the
// runtime or the caller made elsewhere.
func Zero(b []byte) {
	clear(b)
}
