package catalog

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/apikeywallet/apiwallet"
)

// Restore loads the saved catalog into c, if one was ever saved; without
// one, c keeps what it holds (the built-in defaults).
func Restore(ctx context.Context, store apiwallet.CatalogStore, c *Catalog) error {
	doc, err := store.FindCatalog(ctx)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	var services []Service
	if err := json.Unmarshal(doc, &services); err != nil {
		return fmt.Errorf("saved service catalog: %w", err)
	}
	return c.Load(services)
}

// SavePut adds or replaces s and saves the catalog (with ev, in one
// transaction); if the save fails, the catalog is as it was.
func SavePut(ctx context.Context, store apiwallet.CatalogStore, c *Catalog, s Service, ev *apiwallet.AuditEvent) error {
	return change(ctx, store, c, ev, func() error { return c.Put(s) })
}

// SaveDelete removes the named service and saves the catalog; if the save
// fails, the catalog is as it was. ENOTFOUND if there is no such service.
func SaveDelete(ctx context.Context, store apiwallet.CatalogStore, c *Catalog, name string, ev *apiwallet.AuditEvent) error {
	return change(ctx, store, c, ev, func() error { return c.Delete(name) })
}

// change applies edit, then saves the admin layer (Put keeps environment
// overrides out of it), restoring the previous layer if the save fails.
func change(ctx context.Context, store apiwallet.CatalogStore, c *Catalog, ev *apiwallet.AuditEvent, edit func() error) error {
	prev := c.Snapshot()
	if err := edit(); err != nil {
		return err
	}
	doc, err := json.Marshal(c.Snapshot())
	if err == nil {
		err = store.SaveCatalog(ctx, doc, ev)
	}
	if err != nil {
		if lerr := c.Load(prev); lerr != nil {
			return fmt.Errorf("%w (and restoring the catalog: %v)", err, lerr)
		}
		return err
	}
	return nil
}
