package apiwallet

import (
	"context"
	"time"
	"unicode/utf8"
)

// KeyTier says whether an upstream key is on the provider's free or paid
// plan; routing prefers free keys while they last.
type KeyTier string

const (
	TierFree KeyTier = "free"
	TierPaid KeyTier = "paid"
)

// Valid reports whether t is a known tier.
func (t KeyTier) Valid() bool { return t == TierFree || t == TierPaid }

// Key statuses. Status is the key's health as the wallet last saw it; a
// key the user switched off (Enabled false) shows as KeyDisabled whatever
// its health.
const (
	KeyActive   = "active"
	KeyDisabled = "disabled"
)

// Bounds on what a key may hold.
const (
	MinSecretLen      = 8
	MaxSecretLen      = 4096
	MaxServiceLen     = 40
	MaxLabelLen       = 100
	MaxKeyTypeLen     = 40
	MaxDescriptionLen = 500
	MaxKeyPriority    = 1000
)

// KeyMetadata is the seed's "metadata" object, kept as given.
type KeyMetadata struct {
	Type        string // free text, e.g. "payment"
	Quota       *int64 // calls the key may make per period; nil means no quota recorded
	Description string
}

// Key is an upstream API key (Stripe, OpenAI, ...) stored in a workspace.
// The secret itself is held only sealed (see internal/vault): Sealed opens
// only with the workspace's data key and only for this workspace and ID, so
// no field of a Key is ever the plaintext.
type Key struct {
	ID          string
	WorkspaceID string
	Service     string // lower-case slug such as "stripe"
	Tier        KeyTier
	Metadata    KeyMetadata
	Label       string
	// Priority orders a workspace's keys for one service: lower values
	// are tried first.
	Priority int
	Enabled  bool
	Status   string // KeyActive, or a health state the proxy sets
	// Masked is the display form of the secret, such as "sk_live_…4f2a".
	Masked string
	// Fingerprint is a keyed hash of the secret (hex), unique within the
	// workspace, so storing one secret twice is detected without comparing
	// plaintext.
	Fingerprint string
	// Sealed is the encrypted secret. It never leaves the server.
	Sealed []byte
	// Version counts the secrets the key has had: 1, plus one per rotation.
	Version    int
	CreatedBy  string // ID of the member who stored it
	CreatedAt  time.Time
	UpdatedAt  time.Time
	LastUsedAt time.Time // zero: never used
	RotatedAt  time.Time // zero: never rotated
}

// DisplayStatus is the status to show: KeyDisabled for a key switched off,
// its health otherwise.
func (k *Key) DisplayStatus() string {
	if !k.Enabled {
		return KeyDisabled
	}
	return k.Status
}

// KeyCreate is what storing a new key takes.
type KeyCreate struct {
	WorkspaceID string
	Secret      string
	Service     string
	Tier        KeyTier
	Metadata    KeyMetadata
	Label       string
	Priority    int
	Enabled     bool
	CreatedBy   string
}

// Validate checks every field and reports each bad one. Field names are
// those of the HTTP API. Details never quote the secret.
func (c *KeyCreate) Validate() error {
	var v ValidationError
	ValidateSecret(&v, "key", c.Secret)
	if c.Service == "" {
		v.Add("service", "is required")
	} else if !validSlug(c.Service) {
		v.Add("service", "must be a lower-case service name of 1 to 40 letters, digits and '-', such as \"stripe\"")
	}
	if c.Tier == "" {
		v.Add("tier", "is required")
	} else if !c.Tier.Valid() {
		v.Add("tier", `must be "free" or "paid"`)
	}
	c.Metadata.validate(&v)
	validateLabel(&v, c.Label)
	validatePriority(&v, c.Priority)
	return v.Err()
}

// KeyUpdate holds the fields to change; nil fields stay as they are.
// Metadata, when given, replaces the whole metadata object.
type KeyUpdate struct {
	Tier     *KeyTier
	Metadata *KeyMetadata
	Enabled  *bool
	Priority *int
	Label    *string
}

// Validate checks the fields that are set.
func (u *KeyUpdate) Validate() error {
	var v ValidationError
	if u.Tier == nil && u.Metadata == nil && u.Enabled == nil && u.Priority == nil && u.Label == nil {
		return Errorf(EINVALID, "nothing to change: send at least one of tier, metadata, enabled, priority, label")
	}
	if u.Tier != nil && !u.Tier.Valid() {
		v.Add("tier", `must be "free" or "paid"`)
	}
	if u.Metadata != nil {
		u.Metadata.validate(&v)
	}
	if u.Label != nil {
		validateLabel(&v, *u.Label)
	}
	if u.Priority != nil {
		validatePriority(&v, *u.Priority)
	}
	return v.Err()
}

// Fields names the fields u changes, for the audit log.
func (u *KeyUpdate) Fields() []string {
	var f []string
	if u.Tier != nil {
		f = append(f, "tier")
	}
	if u.Metadata != nil {
		f = append(f, "metadata")
	}
	if u.Enabled != nil {
		f = append(f, "enabled")
	}
	if u.Priority != nil {
		f = append(f, "priority")
	}
	if u.Label != nil {
		f = append(f, "label")
	}
	return f
}

// KeyRotation is a key's new secret, sealed and fingerprinted for the
// key's own workspace and ID.
type KeyRotation struct {
	Sealed      []byte
	Fingerprint string
	Masked      string
}

// KeyFilter selects a workspace's keys.
type KeyFilter struct {
	WorkspaceID string // required
	Service     string // optional, exact
	Tier        KeyTier
	Enabled     *bool  // optional
	After       string // cursor: IDs greater than this
	Limit       int    // 1..500; 0 means 100
}

// ValidateSecret checks an upstream secret: MinSecretLen to MaxSecretLen
// bytes of printable ASCII without spaces, which is what every provider
// issues and all an HTTP header can carry safely.
func ValidateSecret(v *ValidationError, field, secret string) {
	switch {
	case secret == "":
		v.Add(field, "is required")
	case len(secret) < MinSecretLen || len(secret) > MaxSecretLen:
		v.Add(field, "must be 8 to 4096 characters long")
	default:
		for i := 0; i < len(secret); i++ {
			if c := secret[i]; c <= ' ' || c >= 0x7f {
				v.Add(field, "must be printable ASCII without spaces, tabs, line breaks or control characters")
				return
			}
		}
	}
}

func (m *KeyMetadata) validate(v *ValidationError) {
	if !printable(m.Type, MaxKeyTypeLen) {
		v.Add("metadata.type", "must be at most 40 printable characters")
	}
	if m.Quota != nil && *m.Quota < 0 {
		v.Add("metadata.quota", "must be 0 or more")
	}
	if !printable(m.Description, MaxDescriptionLen) {
		v.Add("metadata.description", "must be at most 500 printable characters")
	}
}

func validateLabel(v *ValidationError, label string) {
	if !printable(label, MaxLabelLen) {
		v.Add("label", "must be at most 100 printable characters")
	}
}

func validatePriority(v *ValidationError, p int) {
	if p < 0 || p > MaxKeyPriority {
		v.Add("priority", "must be from 0 to 1000")
	}
}

// validSlug reports whether s is a service name: [a-z0-9-]{1,40}.
func validSlug(s string) bool {
	if len(s) == 0 || len(s) > MaxServiceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// printable reports whether s is valid UTF-8 of at most max characters with
// no control characters.
func printable(s string, max int) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if r < ' ' || (r >= 0x7f && r < 0xa0) {
			return false
		}
	}
	return true
}

// DataKey is a workspace's data key as stored: wrapped under the root key
// of RootVersion. One per workspace, created with its first key; deleting
// it crypto-shreds every secret of the workspace.
type DataKey struct {
	WorkspaceID string
	Wrapped     []byte
	RootVersion int
	CreatedAt   time.Time
}

// RootKey is the database's record of the root key (ENCRYPTION_KEY): its
// version and a check value, a data key wrapped under it, by which a
// starting instance tells whether it was given the right root.
type RootKey struct {
	Version   int
	Check     []byte
	CreatedAt time.Time
	RotatedAt time.Time // zero: never rotated
}

// RootRotation is the outcome of a master-key rotation.
type RootRotation struct {
	FromVersion int
	ToVersion   int
	DataKeys    int // data keys rewrapped
	Keys        int // stored keys they protect (none of which changed)
}

// KeyStore persists upstream keys and the data keys that seal them. Every
// method that takes a workspace ID is scoped to it: a key of another
// workspace is ENOTFOUND, exactly like a missing one. Mutating methods
// append ev (which may be nil) to the audit log in the same transaction as
// their change.
type KeyStore interface {
	// CreateKey stores k, whose ID the caller chose (the sealed secret is
	// bound to it), filling its times. ECONFLICT if the workspace already
	// holds a key with the same fingerprint, or (limit > 0) already holds
	// limit keys: LimitReached, decided atomically with the insert.
	CreateKey(ctx context.Context, k *Key, limit int, ev *AuditEvent) error
	// FindKeyByID returns a key of workspaceID. ENOTFOUND.
	FindKeyByID(ctx context.Context, workspaceID, id string) (*Key, error)
	// ReadKey is FindKeyByID that also records ev: a read of the key's
	// metadata. ENOTFOUND, recording nothing.
	ReadKey(ctx context.Context, workspaceID, id string, ev *AuditEvent) (*Key, error)
	// FindKeys lists keys ordered by ID.
	FindKeys(ctx context.Context, f KeyFilter) ([]*Key, error)
	// UpdateKey applies upd and returns the new key. ENOTFOUND.
	UpdateKey(ctx context.Context, workspaceID, id string, upd KeyUpdate, ev *AuditEvent) (*Key, error)
	// RotateKey replaces the key's secret, keeping its ID and everything
	// else, and returns the new key. ENOTFOUND; ECONFLICT if another key of
	// the workspace holds that secret or it is the key's current one.
	RotateKey(ctx context.Context, workspaceID, id string, rot KeyRotation, ev *AuditEvent) (*Key, error)
	// DeleteKey deletes the key. ENOTFOUND.
	DeleteKey(ctx context.Context, workspaceID, id string, ev *AuditEvent) error
	// TouchKey records that the key was used at at; it never moves
	// LastUsedAt backwards. ENOTFOUND.
	TouchKey(ctx context.Context, workspaceID, id string, at time.Time) error
	// KeySetVersion returns a number that grows with every change to the
	// workspace's keys for service (all but TouchKey), committed with the
	// change, so that a reader holding the keys can tell whether they
	// changed without reading them again. 0 means the store has no count
	// for them (no key was ever stored): read the keys.
	KeySetVersion(ctx context.Context, workspaceID, service string) (int64, error)

	// FindDataKey returns the workspace's data key. ENOTFOUND.
	FindDataKey(ctx context.Context, workspaceID string) (*DataKey, error)
	// CreateDataKey stores dk unless the workspace already has a data key,
	// and returns the one stored, which may be another caller's. It fails
	// if dk.RootVersion is not the current root version (the root was
	// rotated under the caller).
	CreateDataKey(ctx context.Context, dk *DataKey) (*DataKey, error)
	// DestroyDataKey deletes the workspace's data key, and so crypto-shreds
	// its secrets, together with its keys. Destroying a missing one is not
	// an error.
	DestroyDataKey(ctx context.Context, workspaceID string, ev *AuditEvent) error

	// FindRootKey returns the root key record. ENOTFOUND before the first
	// InitRootKey.
	FindRootKey(ctx context.Context) (*RootKey, error)
	// InitRootKey stores rk unless a root key record exists, and returns
	// the one stored.
	InitRootKey(ctx context.Context, rk *RootKey) (*RootKey, error)
	// RotateRootKey moves every data key from root version from to to, in
	// one transaction that concurrent data-key creation cannot interleave
	// with: rewrap returns each data key wrapped under the new root.
	// ECONFLICT if the root is not at version from.
	RotateRootKey(ctx context.Context, from int, to *RootKey, rewrap func(*DataKey) ([]byte, error), ev *AuditEvent) (*RootRotation, error)
}
