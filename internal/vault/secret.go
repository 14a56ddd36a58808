package vault

import (
	"context"
	"fmt"

	"github.com/apikeywallet/apiwallet"
)

// SealSecret seals a workspace secret that is not an upstream key (such as
// an alert webhook's signing secret) under the workspace's data key,
// creating the data key if the workspace has none, bound to the workspace
// and to name, which must differ from every key id ("alert-webhook").
func (s *Service) SealSecret(ctx context.Context, workspaceID, name string, plain []byte) ([]byte, error) {
	dek, err := s.dataKey(ctx, workspaceID, "", true)
	if err != nil {
		return nil, err
	}
	defer Zero(dek)
	return Seal(dek, AAD{WorkspaceID: workspaceID, KeyID: name}, plain)
}

// OpenSecret opens what SealSecret sealed for the same workspace and name.
// The caller must Zero the result when done. A destroyed data key
// (crypto-shredded workspace) is an error, never an empty secret.
func (s *Service) OpenSecret(ctx context.Context, workspaceID, name string, sealed []byte) ([]byte, error) {
	dek, err := s.dataKey(ctx, workspaceID, "", false)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return nil, fmt.Errorf("vault: secret %s: workspace %s has no data key", name, workspaceID)
	} else if err != nil {
		return nil, err
	}
	defer Zero(dek)
	plain, err := Open(dek, AAD{WorkspaceID: workspaceID, KeyID: name}, sealed)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return plain, nil
}
