package main

import (
	"context"
	"fmt"
	"io"
)

// auditCmd is `apiwallet audit verify`: it walks the whole audit hash chain
// and reports either how many events it checked or the first bad one, in
// which case it fails (exit status 1). It only reads the log, so it can run
// beside a serving wallet.
func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	if len(args) != 1 || args[0] != "verify" {
		return usageError{"usage: apiwallet audit verify"}
	}
	a, err := openApp(ctx, stderr, environ)
	if err != nil {
		return err
	}
	defer a.close()
	n, err := a.db.VerifyAudit(ctx)
	if err != nil {
		return fmt.Errorf("audit log verification failed after checking %d events: %w", n, err)
	}
	fmt.Fprintf(stdout, "audit log intact: %d events\n", n)
	return nil
}
