package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/apikeywallet/apiwallet"
)

// demoEmail is the account apiwallet seed creates.
const demoEmail = "demo@apiwallet.local"

// seed creates a demo USER account with a random password, printed once.
// Running it again leaves an existing demo account alone. The service
// catalog is built in and needs no seeding.
func seed(ctx context.Context, stdout, stderr io.Writer, environ []string) error {
	a, err := openApp(ctx, stderr, environ)
	if err != nil {
		return err
	}
	defer a.close()
	if _, err := a.db.FindUserByEmail(ctx, demoEmail); err == nil {
		fmt.Fprintf(stdout, "demo account %s already exists\n", demoEmail)
		return nil
	} else if apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
		return err
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	password := base64.RawURLEncoding.EncodeToString(b)
	u, err := a.authService().CreateUser(ctx, demoEmail, password, "Demo User", apiwallet.RoleUser)
	if err != nil {
		return describe(err)
	}
	fmt.Fprintf(stdout, "created demo account %s (%s)\npassword: %s\n", u.Email, u.ID, password)
	return nil
}
