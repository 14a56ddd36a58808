package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrDataKeyUnwrap is wrapped by every error UnwrapDataKey, RewrapDataKey and
// WrappedVersion return for a blob they cannot use.
var ErrDataKeyUnwrap = errors.New("unwrap data key")

const (
	// wrappedFormatV1 leads every wrapped data key so a future layout can be
	// told apart from this one without guessing.
	wrappedFormatV1 = 1

	nonceSize = 12
	tagSize   = 16

	wrappedHeaderSize = 1 + 4
	wrappedSize       = wrappedHeaderSize + nonceSize + KeySize + tagSize

	// Each derivation gets its own label so that no two uses of one secret
	// ever share a key.
	infoKEK = "apiwallet/kek/v1"
	adDEK   = "apiwallet/dek/v1|"
)

// Keyring wraps and unwraps workspace data keys under one root key. It keeps
// only the derived key-encryption key, never the root, and is safe for
// concurrent use.
type Keyring struct {
	version int
	kek     cipher.AEAD
}

// NewKeyring derives the key-encryption key from root. version identifies
// the root: it is written into every key this ring wraps so that, during a
// master-key rotation, each stored key says which root it needs. The caller
// still owns root and should Zero it once every ring it needs is built.
func NewKeyring(root []byte, version int) (*Keyring, error) {
	if len(root) != KeySize {
		return nil, fmt.Errorf("vault: root key must be %d bytes, got %d", KeySize, len(root))
	}
	// Capped at MaxInt32 so the 4-byte field reads back into an int on
	// every platform; 0 is refused so an unset version is never mistaken
	// for a real one.
	if version < 1 || int64(version) > math.MaxInt32 {
		return nil, fmt.Errorf("vault: root key version must be between 1 and %d, got %d", math.MaxInt32, version)
	}
	// No salt: the root is already uniformly random, which is what HKDF's
	// extract step would otherwise have to provide.
	kek, err := hkdf.Key(sha256.New, root, nil, infoKEK, KeySize)
	if err != nil {
		return nil, fmt.Errorf("vault: derive key-encryption key: %w", err)
	}
	defer Zero(kek)
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	return &Keyring{version: version, kek: aead}, nil
}

// newAEAD uses the random-nonce GCM construction so that no caller can ever
// supply (and so repeat) a nonce, and so that sealing stays available in
// FIPS 140-only mode.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return aead, nil
}

// Version is the root-key version this ring wraps under.
func (k *Keyring) Version() int { return k.version }

// Format keeps key schedules out of logs: printing a Keyring with any verb,
// including %+v and %#v, shows only its version.
func (k *Keyring) Format(f fmt.State, _ rune) {
	if k == nil {
		fmt.Fprint(f, "vault.Keyring(nil)")
		return
	}
	fmt.Fprintf(f, "vault.Keyring{version: %d}", k.version)
}

// NewDataKey creates a workspace's data key. The plaintext is for immediate
// use and must be Zeroed afterwards; only the wrapped form is stored.
func (k *Keyring) NewDataKey(workspaceID string) (plain, wrapped []byte, err error) {
	if workspaceID == "" {
		return nil, nil, errors.New("vault: new data key: empty workspace id")
	}
	plain = make([]byte, KeySize)
	if _, err := rand.Read(plain); err != nil {
		return nil, nil, fmt.Errorf("vault: new data key: %w", err)
	}
	return plain, k.wrap(workspaceID, plain), nil
}

func (k *Keyring) wrap(workspaceID string, plain []byte) []byte {
	out := make([]byte, wrappedHeaderSize, wrappedSize)
	out[0] = wrappedFormatV1
	binary.BigEndian.PutUint32(out[1:], uint32(k.version))
	return k.kek.Seal(out, nil, plain, dekAD(out[:wrappedHeaderSize], workspaceID))
}

// dekAD authenticates the header along with the workspace, so neither the
// root version nor the owner of a wrapped key can be altered or swapped
// without unwrapping failing. The workspace id is the only variable-length
// part and comes last, so the encoding is unambiguous.
func dekAD(header []byte, workspaceID string) []byte {
	ad := make([]byte, 0, len(header)+len(adDEK)+len(workspaceID))
	ad = append(ad, header...)
	ad = append(ad, adDEK...)
	return append(ad, workspaceID...)
}

// UnwrapDataKey recovers the data key of workspaceID. It fails if the blob
// was wrapped for another workspace, under another root, or altered.
func (k *Keyring) UnwrapDataKey(workspaceID string, wrapped []byte) ([]byte, error) {
	v, err := WrappedVersion(wrapped)
	if err != nil {
		return nil, err
	}
	// Checked up front only for the message: the version is also part of
	// the authenticated data, so a mismatch could never unwrap anyway.
	if v != k.version {
		return nil, fmt.Errorf("%w for workspace %s: wrapped under root key version %d, keyring is version %d", ErrDataKeyUnwrap, workspaceID, v, k.version)
	}
	plain, err := k.kek.Open(nil, nil, wrapped[wrappedHeaderSize:], dekAD(wrapped[:wrappedHeaderSize], workspaceID))
	if err != nil {
		return nil, fmt.Errorf("%w for workspace %s: authentication failed (wrapped for another workspace, under another root key, or altered)", ErrDataKeyUnwrap, workspaceID)
	}
	return plain, nil
}

// RewrapDataKey moves a workspace's data key from this ring's root to to's,
// which is all a master-key rotation has to do: the data key itself, and so
// every secret sealed under it, stays unchanged.
func (k *Keyring) RewrapDataKey(workspaceID string, wrapped []byte, to *Keyring) ([]byte, error) {
	if to == nil {
		return nil, errors.New("vault: rewrap data key: nil target keyring")
	}
	plain, err := k.UnwrapDataKey(workspaceID, wrapped)
	if err != nil {
		return nil, err
	}
	defer Zero(plain)
	return to.wrap(workspaceID, plain), nil
}

// WrappedVersion reports which root key version wrapped a data key, so a
// rotation can pick the right ring without trial decryption. The value is
// not authenticated until the blob is unwrapped.
func WrappedVersion(wrapped []byte) (int, error) {
	if len(wrapped) != wrappedSize {
		return 0, fmt.Errorf("%w: wrapped key is %d bytes, want %d", ErrDataKeyUnwrap, len(wrapped), wrappedSize)
	}
	if wrapped[0] != wrappedFormatV1 {
		return 0, fmt.Errorf("%w: unsupported wrapped key format %d", ErrDataKeyUnwrap, wrapped[0])
	}
	v := binary.BigEndian.Uint32(wrapped[1:wrappedHeaderSize])
	if v < 1 || v > math.MaxInt32 {
		return 0, fmt.Errorf("%w: wrapped key has invalid root key version %d", ErrDataKeyUnwrap, v)
	}
	return int(v), nil
}
