package account

import (
	"context"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// KeyLister is the part of apiwallet.KeyStore the export reads.
type KeyLister interface {
	FindKeys(ctx context.Context, f apiwallet.KeyFilter) ([]*apiwallet.Key, error)
}

// TokenLister is the part of apiwallet.TokenStore the export reads.
type TokenLister interface {
	FindAccessTokens(ctx context.Context, f apiwallet.AccessTokenFilter) ([]*apiwallet.AccessToken, error)
}

type keyJSON struct {
	ID          string    `json:"id"`
	WorkspaceID string    `json:"workspaceId"`
	Service     string    `json:"service"`
	Tier        string    `json:"tier"`
	Label       string    `json:"label,omitempty"`
	Type        string    `json:"type,omitempty"`
	Description string    `json:"description,omitempty"`
	Quota       *int64    `json:"quota,omitempty"`
	Enabled     bool      `json:"enabled"`
	MaskedKey   string    `json:"maskedKey"`
	Fingerprint string    `json:"fingerprint"`
	Version     int       `json:"version"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// KeysSection exports the upstream keys the user stored, in every
// workspace they still belong to, masked: never the secret nor its
// ciphertext.
func KeysSection(keys KeyLister) Section {
	return Section{Name: "keys", Collect: func(ctx context.Context, u *apiwallet.User, ms []*apiwallet.Membership) (any, error) {
		out := []keyJSON{}
		for _, m := range ms {
			after := ""
			for {
				page, err := keys.FindKeys(ctx, apiwallet.KeyFilter{WorkspaceID: m.Workspace.ID, After: after, Limit: 500})
				if err != nil {
					return nil, err
				}
				for _, k := range page {
					if k.CreatedBy != u.ID {
						continue
					}
					out = append(out, keyJSON{ID: k.ID, WorkspaceID: k.WorkspaceID, Service: k.Service, Tier: string(k.Tier),
						Label: k.Label, Type: k.Metadata.Type, Description: k.Metadata.Description, Quota: k.Metadata.Quota,
						Enabled: k.Enabled, MaskedKey: k.Masked, Fingerprint: k.Fingerprint, Version: k.Version,
						CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt})
				}
				if len(page) < 500 {
					break
				}
				after = page[len(page)-1].ID
			}
		}
		return out, nil
	}}
}

type tokenJSON struct {
	ID          string     `json:"id"`
	WorkspaceID string     `json:"workspaceId"`
	Name        string     `json:"name"`
	Masked      string     `json:"masked"`
	Services    []string   `json:"services"`
	CreatedAt   time.Time  `json:"createdAt"`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty"`
	LastUsedAt  *time.Time `json:"lastUsedAt,omitempty"`
	RevokedAt   *time.Time `json:"revokedAt,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// TokensSection exports the wallet access tokens the user created, masked.
func TokensSection(tokens TokenLister) Section {
	return Section{Name: "tokens", Collect: func(ctx context.Context, u *apiwallet.User, _ []*apiwallet.Membership) (any, error) {
		out := []tokenJSON{}
		after := ""
		for {
			page, err := tokens.FindAccessTokens(ctx, apiwallet.AccessTokenFilter{CreatedBy: u.ID, After: after, Limit: 500})
			if err != nil {
				return nil, err
			}
			for _, t := range page {
				services := t.Services
				if services == nil {
					services = []string{}
				}
				out = append(out, tokenJSON{ID: t.ID, WorkspaceID: t.WorkspaceID, Name: t.Name, Masked: t.Masked(),
					Services: services, CreatedAt: t.CreatedAt, ExpiresAt: optTime(t.ExpiresAt),
					LastUsedAt: optTime(t.LastUsedAt), RevokedAt: optTime(t.RevokedAt)})
			}
			if len(page) < 500 {
				return out, nil
			}
			after = page[len(page)-1].ID
		}
	}}
}
