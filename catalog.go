package apiwallet

import "context"

// CatalogStore persists the service catalog as administrators edited it:
// one JSON document, so that every instance and every restart serves the
// same catalog.
type CatalogStore interface {
	// FindCatalog returns the saved document; ENOTFOUND before the first
	// edit, when the built-in catalog applies.
	FindCatalog(ctx context.Context) ([]byte, error)
	// SaveCatalog replaces the document and appends ev in one transaction.
	SaveCatalog(ctx context.Context, doc []byte, ev *AuditEvent) error
}
