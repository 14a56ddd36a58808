package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/apikeywallet/apiwallet/internal/client"
)

// defaultURL is the wallet the client commands talk to when neither
// --url, APIWALLET_URL nor a login names one.
const defaultURL = "http://localhost:6789"

// clientConfig is what login keeps between invocations: the wallet's URL
// and a login token for it. The file holds a credential, so it is written
// 0600 in a 0700 directory, and refused when others may read it.
type clientConfig struct {
	URL       string    `json:"url"`
	Email     string    `json:"email,omitempty"`
	Token     string    `json:"token,omitempty"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

// configPath is APIWALLET_CONFIG, or config.json in the user's
// configuration directory (os.UserConfigDir) under apiwallet/.
func configPath(environ []string) (string, error) {
	if p := lookupEnv(environ, "APIWALLET_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no configuration directory to keep the login in (%v): set APIWALLET_CONFIG to a file path", err)
	}
	return filepath.Join(dir, "apiwallet", "config.json"), nil
}

func lookupEnv(environ []string, name string) string {
	v := ""
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val // the last one wins, as in a shell
		}
	}
	return v
}

// checkPrivate refuses a file or directory that other users may read or
// write (or, for a directory, enter): the login token is a credential.
func checkPrivate(path string, fi fs.FileInfo) error {
	if runtime.GOOS == "windows" {
		return nil // permission bits mean nothing there
	}
	if fi.Mode()&0o077 != 0 {
		want := "600"
		if fi.IsDir() {
			want = "700"
		}
		return fmt.Errorf("%s has mode %04o and others may read the login token in it: "+
			"run chmod %s %s (and log in again if it may have leaked)", path, fi.Mode().Perm(), want, path)
	}
	return nil
}

// loadClientConfig reads the configuration; a missing file is an empty one.
func loadClientConfig(environ []string) (*clientConfig, string, error) {
	path, err := configPath(environ)
	if err != nil {
		return nil, "", err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &clientConfig{}, path, nil
	} else if err != nil {
		return nil, path, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, path, err
	}
	if !fi.Mode().IsRegular() {
		return nil, path, fmt.Errorf("%s is not a regular file", path)
	}
	if err := checkPrivate(path, fi); err != nil {
		return nil, path, err
	}
	var c clientConfig
	if err := json.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&c); err != nil {
		return nil, path, fmt.Errorf("%s: %v (delete it and log in again)", path, err)
	}
	return &c, path, nil
}

// saveClientConfig writes c to path with mode 0600, creating its directory with
// mode 0700, through a temporary file and a rename so that no reader sees
// half a file.
func saveClientConfig(path string, c *clientConfig) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err != nil {
		return err
	} else if runtime.GOOS != "windows" && fi.Mode()&0o022 != 0 {
		// Others could replace the file with one of their own.
		return fmt.Errorf("%s has mode %04o and others may write to it: run chmod 700 %s", dir, fi.Mode().Perm(), dir)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".config-*.json") // created 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// clientFlags are the flags every client command has.
type clientFlags struct {
	url     *string
	timeout *time.Duration
}

func addClientFlags(fs *flag.FlagSet) *clientFlags {
	return &clientFlags{
		url:     fs.String("url", "", "the wallet's base `URL` (default: APIWALLET_URL, else the URL of the last login, else "+defaultURL+")"),
		timeout: fs.Duration("timeout", client.DefaultTimeout, "give up on a call to the wallet after this `duration`"),
	}
}

// session is a client command's wallet, configuration and credential.
type session struct {
	c        *client.Client
	url      string
	cfg      *clientConfig
	path     string
	loggedIn bool
}

// connect resolves the wallet's URL (--url, APIWALLET_URL, the last
// login's URL, the default) and the login token. The token goes only to
// the wallet it was issued by: a command pointed at another URL sends
// none. APIWALLET_TOKEN, if set, is used instead of the stored token.
func (f *clientFlags) connect(inv *invocation, needLogin bool) (*session, error) {
	cfg, path, err := loadClientConfig(inv.environ)
	if err != nil {
		return nil, err
	}
	raw := *f.url
	if raw == "" {
		raw = lookupEnv(inv.environ, "APIWALLET_URL")
	}
	if raw == "" {
		raw = cfg.URL
	}
	if raw == "" {
		raw = defaultURL
	}
	u, err := client.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	s := &session{url: u.String(), cfg: cfg, path: path}
	token := lookupEnv(inv.environ, "APIWALLET_TOKEN")
	if token == "" && cfg.Token != "" && sameWallet(cfg.URL, s.url) {
		if !cfg.ExpiresAt.IsZero() && time.Now().After(cfg.ExpiresAt) {
			if needLogin {
				return nil, fmt.Errorf("the login to %s expired at %s: run apiwallet login", s.url, cfg.ExpiresAt.Format(time.RFC3339))
			}
		} else {
			token = cfg.Token
		}
	}
	if needLogin && token == "" {
		return nil, fmt.Errorf("not logged in to %s: run apiwallet login --url %s", s.url, s.url)
	}
	s.loggedIn = token != ""
	if s.c, err = client.New(s.url, token); err != nil {
		return nil, err
	}
	s.c.SetTimeout(*f.timeout)
	s.c.UserAgent = "apiwallet-cli/" + version
	return s, nil
}

func sameWallet(a, b string) bool {
	ua, err1 := client.ParseURL(a)
	ub, err2 := client.ParseURL(b)
	return err1 == nil && err2 == nil && strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host) && ua.Path == ub.Path
}

// terminal is stdin's file descriptor if it is a terminal.
func terminal(stdin io.Reader) (int, bool) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return int(f.Fd()), true
	}
	return 0, false
}

// maxSecretBytes bounds a secret read from a file or standard input.
const maxSecretBytes = 64 << 10

// readSecret reads a password or key: from the terminal without echo
// after prompt, or else the first line of stdin.
func readSecret(stdin io.Reader, stderr io.Writer, prompt, what string) (string, error) {
	if fd, ok := terminal(stdin); ok {
		fmt.Fprint(stderr, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if len(b) == 0 {
			return "", fmt.Errorf("no %s given", what)
		}
		return string(b), nil
	}
	line, err := bufio.NewReaderSize(io.LimitReader(stdin, maxSecretBytes), 4096).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("no %s on standard input", what)
	}
	return line, nil
}

// readSecretFile reads a secret from a file, without its final newline.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecretBytes {
		return "", fmt.Errorf("%s is larger than %d bytes: not a key", path, maxSecretBytes)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}
