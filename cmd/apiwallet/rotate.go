package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/progress"
	"github.com/apikeywallet/apiwallet/internal/vault"
)

// rotateFlags defines rotate-master-key's flags, for the command and its help.
func rotateFlags(fs *flag.FlagSet) (oldEnv, newEnv *string) {
	oldEnv = fs.String("old-env", "ENCRYPTION_KEY", "`name` of the environment variable holding the current root key")
	newEnv = fs.String("new-env", "NEW_ENCRYPTION_KEY", "`name` of the environment variable holding the new root key")
	return oldEnv, newEnv
}

// rotateMasterKey replaces the root key (ENCRYPTION_KEY). Both keys come
// from environment variables, never from arguments, which any user of the
// machine can read with ps. It rewraps every workspace data key in one
// transaction while the wallet keeps running: reads go on meanwhile, and
// a workspace's first key waits for the commit. Secrets themselves are not
// touched.
//
// Afterwards the old key opens nothing, and instances still running with it
// fail on keys with an error saying so: restart each with ENCRYPTION_KEY set
// to the new key.
func rotateMasterKey(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	fs := flag.NewFlagSet("rotate-master-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	oldEnv, newEnv := rotateFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{"apiwallet rotate-master-key takes no arguments: pass the keys in environment variables " +
			"(ENCRYPTION_KEY and NEW_ENCRYPTION_KEY, or name others with --old-env and --new-env), never on the command line"}
	}
	if *oldEnv == *newEnv {
		return usageError{"--old-env and --new-env name the same variable"}
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	newValue := env[*newEnv]
	if newValue == "" {
		return fmt.Errorf("%s is not set: put the new root key in it (32 random bytes as 64 hex or 44 base64 characters, "+
			"for example from `openssl rand -hex 32`)", *newEnv)
	}
	newRoot, err := vault.ParseRootKey(newValue)
	if err != nil {
		return fmt.Errorf("%s: %w", *newEnv, err)
	}
	defer vault.Zero(newRoot)

	a, err := openApp(ctx, stderr, environ)
	if err != nil {
		return err
	}
	defer a.close()
	// ENCRYPTION_KEY may come from the development secrets file, which the
	// configuration has already read.
	oldValue, fromFile := env[*oldEnv], false
	if *oldEnv == "ENCRYPTION_KEY" {
		oldValue, fromFile = a.cfg.EncryptionKey, a.cfg.GeneratedSecrets && env["ENCRYPTION_KEY"] == "" && env["ENCRYPTION_KEY_FILE"] == ""
	}
	if oldValue == "" {
		return fmt.Errorf("%s is not set: it must hold the current root key", *oldEnv)
	}
	oldRoot, err := vault.ParseRootKey(oldValue)
	if err != nil {
		return fmt.Errorf("%s: %w", *oldEnv, err)
	}
	defer vault.Zero(oldRoot)

	ev := apiwallet.NewAuditEvent(ctx, "", apiwallet.ActorSystem, "rotate-master-key", "vault.rotate_root", "root_key", "")
	start := time.Now()
	var total int64
	if err := a.db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM data_keys`).Scan(&total); err != nil {
		return err
	}
	bar := progress.New(stdout, total, "rewrapping data keys")
	res, err := vault.RotateRootKey(ctx, progressStore{a.db, bar}, oldRoot, newRoot, ev)
	if err != nil {
		bar.Abandon()
		if errors.Is(err, vault.ErrRootKeyMismatch) {
			return fmt.Errorf("%s does not hold the current root key; nothing was changed: %w", *oldEnv, err)
		}
		return fmt.Errorf("rotation failed; nothing was changed: %w", describe(err))
	}
	bar.Finish()
	fmt.Fprintf(stdout, "rotated the root key from version %d to %d: rewrapped %d data keys (protecting %d keys) in one transaction in %v\n",
		res.FromVersion, res.ToVersion, res.DataKeys, res.Keys, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(stdout, "the old key no longer opens anything. Restart every instance with ENCRYPTION_KEY set to the new key "+
		"(the value of %s); until then running instances refuse to use keys and say why.\n", *newEnv)
	if fromFile {
		fmt.Fprintf(stdout, "the old key came from %s: replace its encryptionKey with the new key before restarting.\n",
			filepath.Join(a.cfg.DataDir, "secrets.json"))
	}
	return nil
}

// progressStore counts each data key rewrapped on bar.
type progressStore struct {
	apiwallet.KeyStore
	bar *progress.Bar
}

func (s progressStore) RotateRootKey(ctx context.Context, from int, to *apiwallet.RootKey,
	rewrap func(*apiwallet.DataKey) ([]byte, error), ev *apiwallet.AuditEvent) (*apiwallet.RootRotation, error) {
	return s.KeyStore.RotateRootKey(ctx, from, to, func(dk *apiwallet.DataKey) ([]byte, error) {
		b, err := rewrap(dk)
		s.bar.Add(1)
		return b, err
	}, ev)
}
