package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeSecret(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Each secret may come from a file named by VAR_FILE, as Docker secrets are
// mounted; the trailing newline `echo` or an editor leaves is not part of it.
func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	jwt := strings.Repeat("j", 40)
	key := strings.Repeat("ab", 32)
	c, err := Load([]string{
		"APP_ENV=production",
		"JWT_SECRET_FILE=" + writeSecret(t, dir, "jwt", jwt+"\n"),
		"ENCRYPTION_KEY_FILE=" + writeSecret(t, dir, "key", key+"\r\n"),
		"STRIPE_SECRET_KEY_FILE=" + writeSecret(t, dir, "stripe", "sk_test_fromfile"),
		"STRIPE_WEBHOOK_SECRET_FILE=" + writeSecret(t, dir, "whsec", "whsec_fromfile\n\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(c.JWTSecret) != jwt || c.EncryptionKey != key || c.StripeSecretKey != "sk_test_fromfile" || c.StripeWebhookSecret != "whsec_fromfile" {
		t.Fatalf("secrets read from files: jwt %q key %q stripe %q webhook %q", c.JWTSecret, c.EncryptionKey, c.StripeSecretKey, c.StripeWebhookSecret)
	}
	// Secrets from files are explicit: production needs nothing generated.
	if err := c.LoadSecrets(nil); err != nil || c.GeneratedSecrets {
		t.Fatalf("LoadSecrets: %v, generated %v", err, c.GeneratedSecrets)
	}

	// A secret inside a file is checked like one in the environment.
	_, err = Load([]string{"JWT_SECRET_FILE=" + writeSecret(t, dir, "short", "tooshort-secret\n")})
	if err == nil || !strings.Contains(err.Error(), "JWT_SECRET is 15 characters long") {
		t.Fatalf("short secret in a file: %v", err)
	}
}

// Both VAR and VAR_FILE, an unreadable file or an empty one are
// configuration errors that name the variable and the path, never the
// secret, and all of them are reported at once.
func TestSecretFilesRefused(t *testing.T) {
	dir := t.TempDir()
	const secret = "s3cret-value-that-must-not-leak-0123456789"
	unreadable := writeSecret(t, dir, "unreadable", secret)
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	env := []string{
		"JWT_SECRET=" + secret, "JWT_SECRET_FILE=" + writeSecret(t, dir, "jwt", secret),
		"ENCRYPTION_KEY_FILE=" + missing,
		"STRIPE_SECRET_KEY_FILE=" + writeSecret(t, dir, "empty", "\n"),
		"STRIPE_WEBHOOK_SECRET_FILE=" + unreadable,
	}
	_, err := Load(env)
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	want := []string{
		"JWT_SECRET and JWT_SECRET_FILE are both set",
		"ENCRYPTION_KEY_FILE: cannot read " + missing + ": no such file or directory",
		"STRIPE_SECRET_KEY_FILE: " + filepath.Join(dir, "empty") + " is empty",
	}
	// root reads a file whatever its mode.
	if os.Geteuid() != 0 {
		want = append(want, "STRIPE_WEBHOOK_SECRET_FILE: cannot read "+unreadable+": permission denied")
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not say %q:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, secret) {
		t.Errorf("the error shows a secret:\n%s", msg)
	}
	if strings.Count(msg, missing) != 1 {
		t.Errorf("the path is named more than once:\n%s", msg)
	}
}
