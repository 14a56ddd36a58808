package vault_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/apikeywallet/apiwallet/internal/vault"
)

const (
	wsA = "ws_aaaaaaaa"
	wsB = "ws_bbbbbbbb"

	// Layouts documented in the brief; the tests pin them because stored
	// data depends on them.
	sealedNonceOffset  = 1
	wrappedNonceOffset = 5
	nonceLen           = 12
	wrappedLen         = 1 + 4 + 12 + 32 + 16
)

func randomKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, vault.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newRing(t testing.TB, version int) *vault.Keyring {
	t.Helper()
	ring, err := vault.NewKeyring(randomKey(t), version)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func newDEK(t testing.TB, ring *vault.Keyring, ws string) (plain, wrapped []byte) {
	t.Helper()
	plain, wrapped, err := ring.NewDataKey(ws)
	if err != nil {
		t.Fatal(err)
	}
	return plain, wrapped
}

func seal(t testing.TB, dek []byte, aad vault.AAD, plaintext string) []byte {
	t.Helper()
	sealed, err := vault.Seal(dek, aad, []byte(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// wantDecryptError checks that Open failed with a *DecryptError naming keyID
// and that the message carries none of the given secrets.
func wantDecryptError(t *testing.T, err error, keyID string, secrets ...[]byte) *vault.DecryptError {
	t.Helper()
	var de *vault.DecryptError
	if !errors.As(err, &de) {
		t.Fatalf("error = %v (%T), want *vault.DecryptError", err, err)
	}
	if de.KeyID != keyID {
		t.Errorf("DecryptError.KeyID = %q, want %q", de.KeyID, keyID)
	}
	if !strings.HasPrefix(de.Error(), "decrypt key "+keyID+": ") {
		t.Errorf("error %q does not name key %q", de.Error(), keyID)
	}
	assertNoLeak(t, de.Error(), secrets...)
	return de
}

func assertNoLeak(t *testing.T, msg string, secrets ...[]byte) {
	t.Helper()
	for _, s := range secrets {
		for _, form := range []string{string(s), hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s), fmt.Sprint(s)} {
			if len(form) >= 4 && strings.Contains(msg, form) {
				t.Errorf("message %q leaks secret material %q", msg, form)
			}
		}
	}
}

// Guarantee: a stored secret comes back exactly as it went in, through the
// whole envelope (root -> KEK -> wrapped DEK -> sealed secret).
func TestSealOpenRoundTrip(t *testing.T) {
	ring := newRing(t, 1)
	_, wrapped := newDEK(t, ring, wsA)
	dek, err := ring.UnwrapDataKey(wsA, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	aad := vault.AAD{WorkspaceID: wsA, KeyID: "key_1"}
	for _, secret := range []string{"sk_live_abcdefgh1234567890XYZ4f2a", "", strings.Repeat("x", 10000), "ключ-🔑"} {
		sealed := seal(t, dek, aad, secret)
		if bytes.Contains(sealed, []byte(secret)) && secret != "" {
			t.Fatalf("sealed form contains the plaintext")
		}
		got, err := vault.Open(dek, aad, sealed)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if string(got) != secret {
			t.Fatalf("round trip = %q, want %q", got, secret)
		}
	}
}

// Guarantee: at-rest ciphertext is authenticated; altering any byte
// (format, nonce, ciphertext or tag) or truncating it is detected rather
// than yielding a wrong key.
func TestOpenRejectsTamperedCiphertext(t *testing.T) {
	dek := randomKey(t)
	aad := vault.AAD{WorkspaceID: wsA, KeyID: "key_1"}
	secret := "sk_live_abcdefgh1234567890XYZ4f2a"
	sealed := seal(t, dek, aad, secret)
	for i := range sealed {
		tampered := bytes.Clone(sealed)
		tampered[i] ^= 0x01
		_, err := vault.Open(dek, aad, tampered)
		wantDecryptError(t, err, "key_1", []byte(secret), dek)
	}
	for _, n := range []int{0, 1, 12, 28, len(sealed) - 1} {
		_, err := vault.Open(dek, aad, sealed[:n])
		wantDecryptError(t, err, "key_1", []byte(secret), dek)
	}
	extended := append(bytes.Clone(sealed), 0)
	_, err := vault.Open(dek, aad, extended)
	wantDecryptError(t, err, "key_1", []byte(secret), dek)
}

// Guarantee: a ciphertext is bound to its workspace and key row, so copying
// it to another row or workspace in the database does not make it open
// there; the failure is a *DecryptError naming the key that was asked for,
// with the documented message and no secret in it.
func TestOpenRejectsForeignAAD(t *testing.T) {
	dek := randomKey(t)
	secret := "sk_live_abcdefgh1234567890XYZ4f2a"
	sealed := seal(t, dek, vault.AAD{WorkspaceID: wsA, KeyID: "key_1"}, secret)

	for _, aad := range []vault.AAD{
		{WorkspaceID: wsB, KeyID: "key_1"},
		{WorkspaceID: wsA, KeyID: "key_2"},
		{WorkspaceID: wsB, KeyID: "key_2"},
		{WorkspaceID: wsA + "k", KeyID: "ey_1"}, // same concatenation, other split
		{WorkspaceID: "", KeyID: wsA + "key_1"},
	} {
		got, err := vault.Open(dek, aad, sealed)
		if got != nil {
			t.Errorf("Open(%+v) returned plaintext", aad)
		}
		de := wantDecryptError(t, err, aad.KeyID, []byte(secret), dek)
		want := "decrypt key " + aad.KeyID + ": authentication failed (ciphertext does not belong to this key or workspace, or the data key was destroyed)"
		if de.Error() != want {
			t.Errorf("error = %q, want %q", de.Error(), want)
		}
	}
}

// Guarantee: AAD fields are length-prefixed, so two different (workspace,
// key) pairs whose concatenations match cannot open each other's secrets.
func TestAADEncodingIsUnambiguous(t *testing.T) {
	dek := randomKey(t)
	sealed := seal(t, dek, vault.AAD{WorkspaceID: "ab", KeyID: "c"}, "secret-value")
	_, err := vault.Open(dek, vault.AAD{WorkspaceID: "a", KeyID: "bc"}, sealed)
	wantDecryptError(t, err, "bc")
}

// Guarantee: secrets sealed under one workspace's data key cannot be opened
// with another's, and once a DEK is destroyed nothing else opens them
// (crypto-shredding).
func TestOpenWithOtherDataKeyFails(t *testing.T) {
	ring := newRing(t, 1)
	dekA, _ := newDEK(t, ring, wsA)
	dekB, _ := newDEK(t, ring, wsA)
	aad := vault.AAD{WorkspaceID: wsA, KeyID: "key_1"}
	sealed := seal(t, dekA, aad, "sk_live_abcdefgh1234567890XYZ4f2a")
	_, err := vault.Open(dekB, aad, sealed)
	wantDecryptError(t, err, "key_1", dekA, dekB)
}

// Guarantee: malformed input is still a *DecryptError (callers handle one
// type), but with a reason that does not claim an authentication failure.
func TestOpenMalformedInput(t *testing.T) {
	dek := randomKey(t)
	aad := vault.AAD{WorkspaceID: wsA, KeyID: "key_9"}
	sealed := seal(t, dek, aad, "sk_live_abcdefgh1234567890XYZ4f2a")
	badFormat := bytes.Clone(sealed)
	badFormat[0] = 2
	cases := map[string]struct {
		dek, sealed []byte
	}{
		"nil":        {dek, nil},
		"short":      {dek, sealed[:28]},
		"bad format": {dek, badFormat},
		"short dek":  {dek[:16], sealed},
		"nil dek":    {nil, sealed},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := vault.Open(c.dek, aad, c.sealed)
			de := wantDecryptError(t, err, "key_9", dek)
			if strings.Contains(de.Error(), "authentication failed") {
				t.Errorf("malformed input reported as authentication failure: %q", de.Error())
			}
		})
	}
}

// Guarantee: Seal refuses to produce a ciphertext that is not bound to both
// an owner and a row, or that uses a key of the wrong size.
func TestSealRejectsUnboundOrBadKey(t *testing.T) {
	dek := randomKey(t)
	for _, aad := range []vault.AAD{{}, {WorkspaceID: wsA}, {KeyID: "key_1"}} {
		if _, err := vault.Seal(dek, aad, []byte("x")); err == nil {
			t.Errorf("Seal(%+v) succeeded, want error", aad)
		}
	}
	if _, err := vault.Seal(dek[:31], vault.AAD{WorkspaceID: wsA, KeyID: "key_1"}, []byte("x")); err == nil {
		t.Error("Seal with a 31-byte key succeeded")
	}
}

// Guarantee: nonces are never reused; two seals of the same plaintext under
// the same key and AAD differ in nonce and ciphertext (GCM's security rests
// on this).
func TestSealNoncesDiffer(t *testing.T) {
	dek := randomKey(t)
	aad := vault.AAD{WorkspaceID: wsA, KeyID: "key_1"}
	seen := map[string]bool{}
	var first []byte
	for i := 0; i < 1000; i++ {
		sealed := seal(t, dek, aad, "same plaintext")
		nonce := string(sealed[sealedNonceOffset : sealedNonceOffset+nonceLen])
		if seen[nonce] {
			t.Fatalf("nonce repeated after %d seals", i)
		}
		seen[nonce] = true
		if first == nil {
			first = sealed
		} else if i == 1 && bytes.Equal(first, sealed) {
			t.Fatal("two seals of the same plaintext are identical")
		}
	}
}

// Guarantee: the stored layouts are the documented ones (format version,
// root version, nonce, ciphertext+tag), so stored data stays readable.
func TestFormats(t *testing.T) {
	ring := newRing(t, 0x01020304)
	dek, wrapped := newDEK(t, ring, wsA)
	if len(dek) != 32 {
		t.Fatalf("data key is %d bytes, want 32", len(dek))
	}
	if len(wrapped) != wrappedLen {
		t.Fatalf("wrapped key is %d bytes, want %d", len(wrapped), wrappedLen)
	}
	if wrapped[0] != 1 || !bytes.Equal(wrapped[1:5], []byte{1, 2, 3, 4}) {
		t.Fatalf("wrapped header = % x, want 01 01 02 03 04", wrapped[:5])
	}
	if v, err := vault.WrappedVersion(wrapped); err != nil || v != 0x01020304 {
		t.Fatalf("WrappedVersion = %d, %v", v, err)
	}
	if ring.Version() != 0x01020304 {
		t.Fatalf("Version = %d", ring.Version())
	}
	sealed := seal(t, dek, vault.AAD{WorkspaceID: wsA, KeyID: "k"}, "abc")
	if sealed[0] != 1 || len(sealed) != 1+12+3+16 {
		t.Fatalf("sealed = % x, want format 1 and %d bytes", sealed, 1+12+3+16)
	}
	for _, bad := range [][]byte{nil, wrapped[:wrappedLen-1], append(bytes.Clone(wrapped), 0)} {
		if _, err := vault.WrappedVersion(bad); !errors.Is(err, vault.ErrDataKeyUnwrap) {
			t.Errorf("WrappedVersion(%d bytes) error = %v, want ErrDataKeyUnwrap", len(bad), err)
		}
	}
	badFormat := bytes.Clone(wrapped)
	badFormat[0] = 9
	if _, err := vault.WrappedVersion(badFormat); !errors.Is(err, vault.ErrDataKeyUnwrap) {
		t.Errorf("WrappedVersion(format 9) error = %v, want ErrDataKeyUnwrap", err)
	}
}

// Guarantee: each workspace's data key is fresh and independent, and each
// wrapping uses a fresh nonce.
func TestNewDataKeysAreUnique(t *testing.T) {
	ring := newRing(t, 1)
	dek1, w1 := newDEK(t, ring, wsA)
	dek2, w2 := newDEK(t, ring, wsA)
	if bytes.Equal(dek1, dek2) {
		t.Fatal("two data keys are equal")
	}
	if bytes.Equal(w1[wrappedNonceOffset:wrappedNonceOffset+nonceLen], w2[wrappedNonceOffset:wrappedNonceOffset+nonceLen]) {
		t.Fatal("two wrappings share a nonce")
	}
	if bytes.Contains(w1, dek1) {
		t.Fatal("wrapped key contains the plaintext key")
	}
	if _, _, err := ring.NewDataKey(""); err == nil {
		t.Fatal("NewDataKey accepted an empty workspace id")
	}
}

// Guarantee: a data key wrapped for workspace A cannot be unwrapped as
// workspace B's, so swapping wrapped keys between workspace rows cannot
// hand one workspace another's secrets.
func TestUnwrapBoundToWorkspace(t *testing.T) {
	ring := newRing(t, 1)
	dek, wrapped := newDEK(t, ring, wsA)
	got, err := ring.UnwrapDataKey(wsA, wrapped)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("UnwrapDataKey(A) = %x, %v; want the original key", got, err)
	}
	got, err = ring.UnwrapDataKey(wsB, wrapped)
	if got != nil || !errors.Is(err, vault.ErrDataKeyUnwrap) {
		t.Fatalf("UnwrapDataKey(B) = %x, %v; want ErrDataKeyUnwrap", got, err)
	}
	assertNoLeak(t, err.Error(), dek)

	tampered := bytes.Clone(wrapped)
	tampered[len(tampered)-1] ^= 1
	if _, err := ring.UnwrapDataKey(wsA, tampered); !errors.Is(err, vault.ErrDataKeyUnwrap) {
		t.Fatalf("tampered wrapped key: err = %v, want ErrDataKeyUnwrap", err)
	}
}

// Guarantee: master-key rotation works by rewrapping: after RewrapDataKey the
// new ring opens the DEK (and so every secret sealed under it, unchanged),
// and the old root no longer does.
func TestRewrapToNewRoot(t *testing.T) {
	oldRing := newRing(t, 1)
	newRingV2 := newRing(t, 2)
	dek, wrapped := newDEK(t, oldRing, wsA)
	aad := vault.AAD{WorkspaceID: wsA, KeyID: "key_1"}
	sealed := seal(t, dek, aad, "sk_live_abcdefgh1234567890XYZ4f2a")

	rewrapped, err := oldRing.RewrapDataKey(wsA, wrapped, newRingV2)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := vault.WrappedVersion(rewrapped); v != 2 {
		t.Fatalf("rewrapped version = %d, want 2", v)
	}
	got, err := newRingV2.UnwrapDataKey(wsA, rewrapped)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("new ring: %x, %v; want the original key", got, err)
	}
	if plain, err := vault.Open(got, aad, sealed); err != nil || string(plain) != "sk_live_abcdefgh1234567890XYZ4f2a" {
		t.Fatalf("secret after rotation: %q, %v", plain, err)
	}
	if _, err := oldRing.UnwrapDataKey(wsA, rewrapped); !errors.Is(err, vault.ErrDataKeyUnwrap) {
		t.Fatalf("old ring opened the rewrapped key: %v", err)
	}
	// The old root fails on cryptography, not only on the version check.
	oldRootClaimingV2 := newRing(t, 2)
	if _, err := oldRootClaimingV2.UnwrapDataKey(wsA, rewrapped); !errors.Is(err, vault.ErrDataKeyUnwrap) {
		t.Fatalf("another root with the same version opened the key: %v", err)
	}
	if _, err := newRingV2.UnwrapDataKey(wsA, wrapped); !errors.Is(err, vault.ErrDataKeyUnwrap) {
		t.Fatalf("new ring opened a key wrapped under the old root: %v", err)
	}
	if _, err := oldRing.RewrapDataKey(wsB, wrapped, newRingV2); !errors.Is(err, vault.ErrDataKeyUnwrap) {
		t.Fatalf("rewrap under the wrong workspace: %v", err)
	}
	if _, err := oldRing.RewrapDataKey(wsA, wrapped, nil); err == nil {
		t.Fatal("rewrap to a nil keyring succeeded")
	}
}

// Guarantee: the root version in a wrapped key is authenticated, so editing
// it cannot make a ring accept a key it did not wrap.
func TestWrappedVersionIsAuthenticated(t *testing.T) {
	root := randomKey(t)
	v1, err := vault.NewKeyring(root, 1)
	if err != nil {
		t.Fatal(err)
	}
	v2SameRoot, err := vault.NewKeyring(root, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, wrapped := newDEK(t, v1, wsA)
	relabelled := bytes.Clone(wrapped)
	relabelled[4] = 2
	if _, err := v2SameRoot.UnwrapDataKey(wsA, relabelled); !errors.Is(err, vault.ErrDataKeyUnwrap) {
		t.Fatalf("relabelled wrapped key unwrapped: %v", err)
	}
}

// Guarantee: ENCRYPTION_KEY is accepted in exactly the three documented
// forms, each meaning one key; anything else is refused with a message that
// lists the accepted forms and never echoes the value.
func TestParseRootKey(t *testing.T) {
	key := []byte("0123456789abcdef0123456789ABCDEF")
	hexKey := hex.EncodeToString(key)
	b64Key := base64.StdEncoding.EncodeToString(key)
	if len(hexKey) != 64 || len(b64Key) != 44 {
		t.Fatal("test fixture lengths are wrong")
	}
	// 32 bytes whose base64 has non-zero padding bits: lenient decoders
	// accept it as a second spelling of another key.
	nonCanonical := b64Key[:42] + string(rune(b64Key[42]+1)) + "="

	tests := []struct {
		name  string
		input string
		want  []byte
	}{
		{"raw 32 bytes", string(key), key},
		{"raw 32 binary bytes", "\x00\xff" + string(key[2:]), append([]byte{0, 0xff}, key[2:]...)},
		{"hex 64 lower", hexKey, key},
		{"hex 64 upper", strings.ToUpper(hexKey), key},
		{"base64 44", b64Key, key},
		{"empty", "", nil},
		{"31 bytes", string(key[:31]), nil},
		{"33 bytes", string(key) + "x", nil},
		{"hex 62", hexKey[:62], nil},
		{"hex 66", hexKey + "00", nil},
		{"bad hex", "zz" + hexKey[2:], nil},
		{"hex with a g", hexKey[:63] + "g", nil},
		{"base64 43", b64Key[:43], nil},
		{"base64 url alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString([]byte("\xfb\xff" + string(key[2:])))), nil},
		{"base64 unpadded 33 bytes", base64.RawStdEncoding.EncodeToString(append(key, 'x')), nil},
		{"base64 with newline", b64Key[:20] + "\n" + b64Key[21:], nil},
		{"base64 non-canonical", nonCanonical, nil},
		{"44 chars not base64", strings.Repeat("!", 44), nil},
		{"surrounding whitespace", " " + hexKey + "\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vault.ParseRootKey(tt.input)
			if tt.want != nil {
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Fatalf("ParseRootKey = %x, %v; want %x", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseRootKey accepted %d-byte input as %x", len(tt.input), got)
			}
			if !errors.Is(err, vault.ErrInvalidRootKey) {
				t.Errorf("error %v does not wrap ErrInvalidRootKey", err)
			}
			msg := err.Error()
			for _, form := range []string{"32 raw bytes", "64 hex", "44 standard base64"} {
				if !strings.Contains(msg, form) {
					t.Errorf("error %q does not mention %q", msg, form)
				}
			}
			if tt.input != "" && strings.Contains(msg, strings.TrimSpace(tt.input)) {
				t.Errorf("error %q echoes the input", msg)
			}
			// Not even a fragment: the hex decoder's own error quotes the
			// offending character, which must not get through.
			for i := 0; i+8 <= len(tt.input); i++ {
				if strings.Contains(msg, tt.input[i:i+8]) {
					t.Errorf("error %q contains input fragment %q", msg, tt.input[i:i+8])
					break
				}
			}
			if strings.ContainsAny(msg, "'\"") {
				t.Errorf("error %q quotes something", msg)
			}
		})
	}
}

// Guarantee: a Keyring is only built from a full-size root and a version
// that fits the wrapped format and reads back unchanged.
func TestNewKeyringValidates(t *testing.T) {
	root := randomKey(t)
	if _, err := vault.NewKeyring(root[:16], 1); err == nil {
		t.Error("accepted a 16-byte root")
	}
	for _, v := range []int{0, -1, 1 << 31} {
		if _, err := vault.NewKeyring(root, v); err == nil {
			t.Errorf("accepted version %d", v)
		}
	}
	if _, err := vault.NewKeyring(root, 1<<31-1); err != nil {
		t.Errorf("refused version MaxInt32: %v", err)
	}
}

// Guarantee: printing a Keyring (for example in a debug log of a config
// struct) never shows the key schedule it holds.
func TestKeyringDoesNotPrintKeys(t *testing.T) {
	ring := newRing(t, 7)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x"} {
		got := fmt.Sprintf(verb, ring)
		if got != "vault.Keyring{version: 7}" {
			t.Errorf("Sprintf(%s) = %q", verb, got)
		}
	}
	wrapper := struct{ Ring *vault.Keyring }{ring}
	if got := fmt.Sprintf("%+v", wrapper); got != "{Ring:vault.Keyring{version: 7}}" {
		t.Errorf("nested %%+v = %q", got)
	}
}

// Guarantee: a Keyring can be shared by concurrent requests.
func TestKeyringConcurrentUse(t *testing.T) {
	ring := newRing(t, 1)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				ws := fmt.Sprintf("ws_%d", i)
				dek, wrapped, err := ring.NewDataKey(ws)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := ring.UnwrapDataKey(ws, wrapped)
				if err != nil || !bytes.Equal(got, dek) {
					t.Errorf("concurrent unwrap: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Guarantee: fingerprints detect the same secret stored twice in a workspace
// (stable for one DEK), reveal nothing across workspaces (differ across
// DEKs), and survive a master-key rotation (keyed from the DEK, not the
// root).
func TestFingerprint(t *testing.T) {
	oldRing, newRingV2 := newRing(t, 1), newRing(t, 2)
	dekA, wrappedA := newDEK(t, oldRing, wsA)
	dekB, _ := newDEK(t, oldRing, wsB)
	secret := "sk_live_abcdefgh1234567890XYZ4f2a"

	fp := vault.Fingerprint(dekA, secret)
	if len(fp) != 64 || strings.Trim(fp, "0123456789abcdef") != "" {
		t.Fatalf("fingerprint %q is not 64 lowercase hex characters", fp)
	}
	if vault.Fingerprint(dekA, secret) != fp {
		t.Fatal("fingerprint is not stable")
	}
	if vault.Fingerprint(dekB, secret) == fp {
		t.Fatal("fingerprint is the same under another workspace's DEK")
	}
	if vault.Fingerprint(dekA, secret+"x") == fp {
		t.Fatal("different secrets share a fingerprint")
	}
	if strings.Contains(fp, hex.EncodeToString([]byte(secret))[:16]) {
		t.Fatal("fingerprint contains the secret")
	}

	rewrapped, err := oldRing.RewrapDataKey(wsA, wrappedA, newRingV2)
	if err != nil {
		t.Fatal(err)
	}
	dekAfter, err := newRingV2.UnwrapDataKey(wsA, rewrapped)
	if err != nil {
		t.Fatal(err)
	}
	if vault.Fingerprint(dekAfter, secret) != fp {
		t.Fatal("fingerprint changed across root rotation")
	}

	defer func() {
		if recover() == nil {
			t.Fatal("Fingerprint with a short key did not panic")
		}
	}()
	vault.Fingerprint(dekA[:16], secret)
}

// Guarantee: the display form identifies a key (type prefix, last 4) but
// never reveals more than that, and never more than a third of a short
// secret or half of a long one.
func TestMask(t *testing.T) {
	tests := []struct{ secret, want string }{
		{"sk_live_abcdefgh1234567890XYZ4f2a", "sk_live_…4f2a"},
		{"sk_test_51HxYzAbCdEfGhIjKlMnOpQrStUv", "sk_test_…StUv"},
		{"rk_live_abcdefghijklmnopqrstuvwx", "rk_live_…uvwx"},
		{"sk-proj-abcdefghijklmnopqrstuvwxyz0123", "sk-proj-…0123"},
		{"sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "sk-ant-…wxyz"},  // '-' at 12 is outside the window
		{"github_pat_11ABCDEFG0123456789abcdefghij", "github_…ghij"}, // 11-char prefix falls back
		{"whsec_abcdefghijklmnopqrstuvwxyz", "whsec_…wxyz"},
		{"ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_…6789"},
		{"0123456789abcdef0123456789abcdef", "…cdef"},               // OpenWeather: no prefix
		{"abcdefghij_klmnopqrstuvwxyz", "…wxyz"},                    // separator beyond 8 only
		{"AIzaSyA1234567890abcdefghijklmnopqrstu", "…rstu"},         // Google: no separator
		{"sk_live_abcde", "…bcde"},                                  // prefix would expose most of it
		{"sk_live_abcdefghijk", "…hijk"},                            // 19: prefix+4 > half
		{"sk_live_abcdefghijklmnop", "sk_live_…mnop"},               // 24: exactly half hidden
		{"abcdefghijkl", "…ijkl"},                                   // 12
		{"abcdefghijk", "…jk"},                                      // 11
		{"abcdef", "…ef"},                                           // 6
		{"abcde", "…"},                                              // 5
		{"a", "…"},                                                  // 1
		{"", ""},                                                    // nothing to mask
		{"ключ_абвгдежзийклмнопрстуфхцч", "ключ_…фхцч"},             // runes, not bytes
		{"_abcdefghijklmnopqrstuvwxyz", "_…wxyz"},                   // degenerate prefix
		{"sk_live_\xff\xfeabcdefghijklmnopqrstuv", "sk_live_…stuv"}, // invalid UTF-8 is not copied raw
	}
	for _, tt := range tests {
		got := vault.Mask(tt.secret)
		if got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.secret, got, tt.want)
		}
		checkMaskBounds(t, tt.secret, got)
	}
	for n := 0; n < 80; n++ {
		for _, sep := range []string{"", "_", "-"} {
			s := strings.Repeat("a", n/2) + sep + strings.Repeat("b", n-n/2)
			checkMaskBounds(t, s, vault.Mask(s))
		}
	}
}

// checkMaskBounds is the property Mask promises for any input.
func checkMaskBounds(t *testing.T, secret, masked string) {
	t.Helper()
	if !utf8.ValidString(masked) {
		t.Errorf("Mask(%q) = %q is not valid UTF-8", secret, masked)
	}
	if secret == "" {
		return
	}
	pre, post, ok := strings.Cut(masked, "…")
	if !ok {
		t.Fatalf("Mask(%q) = %q has no ellipsis", secret, masked)
	}
	r := []rune(secret)
	n := len(r)
	shown := utf8.RuneCountInString(pre) + utf8.RuneCountInString(post)
	limit := n / 3
	if pre != "" {
		limit = n / 2
	}
	if shown > limit || utf8.RuneCountInString(pre) > 8 || utf8.RuneCountInString(post) > 4 {
		t.Errorf("Mask(%q) = %q reveals %d of %d characters", secret, masked, shown, n)
	}
	if !strings.HasPrefix(string(r), pre) || !strings.HasSuffix(string(r), post) {
		t.Errorf("Mask(%q) = %q is not a prefix and suffix of it", secret, masked)
	}
}

// Guarantee: Zero actually wipes key material.
func TestZero(t *testing.T) {
	k := randomKey(t)
	vault.Zero(k)
	if !bytes.Equal(k, make([]byte, len(k))) {
		t.Fatalf("Zero left %x", k)
	}
	vault.Zero(nil)
}
