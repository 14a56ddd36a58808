package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// rootCheckID is the pseudo-workspace the root key's check value is wrapped
// for. Workspace IDs all start "ws_", so it can never be a real one.
const rootCheckID = "apiwallet:root-check"

// ErrRootKeyMismatch is wrapped by every error that comes from holding a
// root key other than the one the database was encrypted with: a wrong
// ENCRYPTION_KEY, or an instance still running with the old one after
// `apiwallet rotate-master-key`.
var ErrRootKeyMismatch = errors.New("root key mismatch")

// Service stores, lists, rotates and reveals a workspace's upstream keys.
// It owns the cryptography around the store: secrets arrive and leave as
// plaintext only through CreateKey, RotateKey and Reveal, and are held
// sealed everywhere else.
//
// It keeps no cache of unwrapped data keys. Unwrapping one is a single
// AES-GCM open of 32 bytes, microseconds beside the query that fetches the
// key row, and without a cache a destroyed (crypto-shredded) data key is
// gone from every instance at the moment it is deleted.
type Service struct {
	// MaxKeys caps the keys one workspace may hold (MAX_KEYS_PER_WORKSPACE);
	// 0 means no cap.
	MaxKeys int

	store apiwallet.KeyStore
	ring  *Keyring
}

// NewService returns a Service that seals with root, the decoded
// ENCRYPTION_KEY. The database records which root version is current and a
// check value wrapped under it: the first instance to start records its
// root as version 1, and every later start verifies that root opens the
// check value, so a wrong ENCRYPTION_KEY (or the old one after a rotation)
// is refused at start-up rather than failing on the first key used. The
// caller still owns root and should Zero it.
func NewService(ctx context.Context, store apiwallet.KeyStore, root []byte) (*Service, error) {
	ring, err := openRoot(ctx, store, root)
	if err != nil {
		return nil, err
	}
	return &Service{store: store, ring: ring}, nil
}

// openRoot returns a keyring for root at the database's current version,
// initialising the root record on first use.
func openRoot(ctx context.Context, store apiwallet.KeyStore, root []byte) (*Keyring, error) {
	rk, err := store.FindRootKey(ctx)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		ring, err := NewKeyring(root, 1)
		if err != nil {
			return nil, err
		}
		check, wrapped, err := ring.NewDataKey(rootCheckID)
		if err != nil {
			return nil, err
		}
		Zero(check)
		rk, err = store.InitRootKey(ctx, &apiwallet.RootKey{Version: 1, Check: wrapped})
		if err != nil {
			return nil, fmt.Errorf("vault: record root key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("vault: read root key record: %w", err)
	}
	ring, err := NewKeyring(root, rk.Version)
	if err != nil {
		return nil, err
	}
	check, err := ring.UnwrapDataKey(rootCheckID, rk.Check)
	if err != nil {
		return nil, fmt.Errorf("vault: %w: ENCRYPTION_KEY is not the root key the database is encrypted with "+
			"(root key version %d); if `apiwallet rotate-master-key` ran, start with the new key", ErrRootKeyMismatch, rk.Version)
	}
	Zero(check)
	return ring, nil
}

// RootVersion is the version of the root key this service holds.
func (s *Service) RootVersion() int { return s.ring.Version() }

// dataKey returns the plaintext data key of a workspace, which the caller
// must Zero. With create, a workspace without one gets one (concurrent
// callers agree on a single key: the store keeps the first). keyID, when
// set, is named in errors.
func (s *Service) dataKey(ctx context.Context, workspaceID, keyID string, create bool) ([]byte, error) {
	dk, err := s.store.FindDataKey(ctx, workspaceID)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND && create {
		plain, wrapped, err := s.ring.NewDataKey(workspaceID)
		if err != nil {
			return nil, err
		}
		Zero(plain)
		dk, err = s.store.CreateDataKey(ctx, &apiwallet.DataKey{WorkspaceID: workspaceID, Wrapped: wrapped, RootVersion: s.ring.Version()})
		if err != nil {
			return nil, fmt.Errorf("vault: create data key for workspace %s: %w", workspaceID, err)
		}
	} else if err != nil {
		return nil, err
	}
	what := "workspace " + workspaceID
	if keyID != "" {
		what = "key " + keyID + " (workspace " + workspaceID + ")"
	}
	if dk.RootVersion != s.ring.Version() {
		return nil, fmt.Errorf("vault: %s: %w: its data key is wrapped under root key version %d but this instance holds version %d; "+
			"the master key was rotated: restart with the new ENCRYPTION_KEY", what, ErrRootKeyMismatch, dk.RootVersion, s.ring.Version())
	}
	plain, err := s.ring.UnwrapDataKey(workspaceID, dk.Wrapped)
	if err != nil {
		return nil, fmt.Errorf("vault: %s: %w", what, err)
	}
	return plain, nil
}

// CreateKey validates c, seals its secret for the workspace and stores it,
// recording ev. EINVALID, ECONFLICT (the workspace holds this secret, or
// MaxKeys keys already).
func (s *Service) CreateKey(ctx context.Context, c apiwallet.KeyCreate, ev *apiwallet.AuditEvent) (*apiwallet.Key, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	dek, err := s.dataKey(ctx, c.WorkspaceID, "", true)
	if err != nil {
		return nil, err
	}
	defer Zero(dek)
	k := &apiwallet.Key{
		ID: apiwallet.NewID("key"), WorkspaceID: c.WorkspaceID, Service: c.Service, Tier: c.Tier,
		Metadata: c.Metadata, Label: c.Label, Priority: c.Priority, Enabled: c.Enabled,
		Status: apiwallet.KeyActive, Version: 1, CreatedBy: c.CreatedBy,
	}
	if err := seal(dek, k, c.Secret); err != nil {
		return nil, err
	}
	if err := s.store.CreateKey(ctx, k, s.MaxKeys, ev); err != nil {
		return nil, err
	}
	return k, nil
}

// seal fills k's sealed secret, fingerprint and masked form.
func seal(dek []byte, k *apiwallet.Key, secret string) error {
	plain := []byte(secret)
	defer Zero(plain)
	sealed, err := Seal(dek, AAD{WorkspaceID: k.WorkspaceID, KeyID: k.ID}, plain)
	if err != nil {
		return err
	}
	k.Sealed, k.Fingerprint, k.Masked = sealed, Fingerprint(dek, secret), Mask(secret)
	return nil
}

// FindKeys lists a workspace's keys ordered by ID.
func (s *Service) FindKeys(ctx context.Context, f apiwallet.KeyFilter) ([]*apiwallet.Key, error) {
	return s.store.FindKeys(ctx, f)
}

// FindKeyByID returns a key of the workspace without recording a read.
// ENOTFOUND.
func (s *Service) FindKeyByID(ctx context.Context, workspaceID, id string) (*apiwallet.Key, error) {
	return s.store.FindKeyByID(ctx, workspaceID, id)
}

// ReadKey returns a key's metadata and records ev, the read. ENOTFOUND.
func (s *Service) ReadKey(ctx context.Context, workspaceID, id string, ev *apiwallet.AuditEvent) (*apiwallet.Key, error) {
	return s.store.ReadKey(ctx, workspaceID, id, ev)
}

// UpdateKey validates and applies upd. EINVALID, ENOTFOUND.
func (s *Service) UpdateKey(ctx context.Context, workspaceID, id string, upd apiwallet.KeyUpdate, ev *apiwallet.AuditEvent) (*apiwallet.Key, error) {
	if err := upd.Validate(); err != nil {
		return nil, err
	}
	return s.store.UpdateKey(ctx, workspaceID, id, upd, ev)
}

// RotateKey replaces a key's secret with secret, keeping its ID, settings,
// usage history and audit trail; the old secret is gone. EINVALID,
// ENOTFOUND, ECONFLICT (another key holds secret, or it is the current one).
func (s *Service) RotateKey(ctx context.Context, workspaceID, id, secret string, ev *apiwallet.AuditEvent) (*apiwallet.Key, error) {
	var v apiwallet.ValidationError
	apiwallet.ValidateSecret(&v, "key", secret)
	if err := v.Err(); err != nil {
		return nil, err
	}
	dek, err := s.dataKey(ctx, workspaceID, id, false)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		// No data key means no keys at all: the ID is simply not here.
		return nil, apiwallet.Errorf(apiwallet.ENOTFOUND, "key not found")
	} else if err != nil {
		return nil, err
	}
	defer Zero(dek)
	k := &apiwallet.Key{ID: id, WorkspaceID: workspaceID}
	if err := seal(dek, k, secret); err != nil {
		return nil, err
	}
	return s.store.RotateKey(ctx, workspaceID, id,
		apiwallet.KeyRotation{Sealed: k.Sealed, Fingerprint: k.Fingerprint, Masked: k.Masked}, ev)
}

// DeleteKey deletes a key. ENOTFOUND.
func (s *Service) DeleteKey(ctx context.Context, workspaceID, id string, ev *apiwallet.AuditEvent) error {
	return s.store.DeleteKey(ctx, workspaceID, id, ev)
}

// Reveal returns the plaintext secret of a workspace's key, for the proxy to
// inject into one upstream request. The caller must Zero it as soon as the
// request is sent and must never log, store or return it. ENOTFOUND for a
// key not in the workspace; any failure to decrypt — a ciphertext moved
// from another row, a destroyed data key, a root key mismatch — is an
// error naming the key ID (a *DecryptError or ErrRootKeyMismatch inside),
// never an empty or wrong secret.
func (s *Service) Reveal(ctx context.Context, workspaceID, keyID string) ([]byte, error) {
	k, err := s.store.FindKeyByID(ctx, workspaceID, keyID)
	if err != nil {
		return nil, err
	}
	dek, err := s.dataKey(ctx, workspaceID, keyID, false)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return nil, fmt.Errorf("vault: key %s: workspace %s has no data key (it was destroyed); the secret is unrecoverable", keyID, workspaceID)
	} else if err != nil {
		return nil, err
	}
	defer Zero(dek)
	plain, err := Open(dek, AAD{WorkspaceID: workspaceID, KeyID: keyID}, k.Sealed)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return plain, nil
}

// DestroyWorkspace crypto-shreds a workspace: its data key is deleted, so
// every secret sealed under it, including copies in backups, can never be
// opened again; its keys are deleted with it.
func (s *Service) DestroyWorkspace(ctx context.Context, workspaceID string, ev *apiwallet.AuditEvent) error {
	return s.store.DestroyDataKey(ctx, workspaceID, ev)
}

// RotateRootKey moves every workspace data key from the root oldRoot to
// newRoot in one transaction (see apiwallet.KeyStore.RotateRootKey) and
// records ev. Secrets are not touched: their data keys are only rewrapped.
// Afterwards only newRoot opens anything, and instances still holding
// oldRoot fail with ErrRootKeyMismatch until restarted with the new
// ENCRYPTION_KEY. Each rewrapped key is checked to open under the new root
// before it is written. The caller owns both roots.
func RotateRootKey(ctx context.Context, store apiwallet.KeyStore, oldRoot, newRoot []byte, ev *apiwallet.AuditEvent) (*apiwallet.RootRotation, error) {
	if bytes.Equal(oldRoot, newRoot) {
		return nil, errors.New("vault: the new root key is the same as the old one")
	}
	from, err := openRoot(ctx, store, oldRoot)
	if err != nil {
		return nil, err
	}
	to, err := NewKeyring(newRoot, from.Version()+1)
	if err != nil {
		return nil, err
	}
	check, wrapped, err := to.NewDataKey(rootCheckID)
	if err != nil {
		return nil, err
	}
	Zero(check)
	return store.RotateRootKey(ctx, from.Version(), &apiwallet.RootKey{Version: to.Version(), Check: wrapped},
		func(dk *apiwallet.DataKey) ([]byte, error) {
			out, err := from.RewrapDataKey(dk.WorkspaceID, dk.Wrapped, to)
			if err != nil {
				return nil, err
			}
			plain, err := to.UnwrapDataKey(dk.WorkspaceID, out)
			if err != nil {
				return nil, fmt.Errorf("vault: rewrapped data key of workspace %s does not open under the new root: %w", dk.WorkspaceID, err)
			}
			Zero(plain)
			return out, nil
		}, ev)
}

// TouchKey records that the key was used at at (see apiwallet.KeyStore).
func (s *Service) TouchKey(ctx context.Context, workspaceID, id string, at time.Time) error {
	return s.store.TouchKey(ctx, workspaceID, id, at)
}

// KeySetVersion tells whether a workspace's keys for service changed (see
// apiwallet.KeyStore).
func (s *Service) KeySetVersion(ctx context.Context, workspaceID, service string) (int64, error) {
	return s.store.KeySetVersion(ctx, workspaceID, service)
}
