package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The repository tracks no build output and ignores ./data/, which holds
// the SQLite database and, outside production, the generated root key.
func TestRepositoryHygiene(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	root := exec.Command("git", "rev-parse", "--show-toplevel")
	top, err := root.Output()
	if err != nil {
		t.Skip("not a git checkout")
	}
	dir := strings.TrimSpace(string(top))
	for _, p := range []string{"data/secrets.json", "data/apiwallet.db", "apiwallet", "bin/apiwallet"} {
		cmd := exec.Command("git", "check-ignore", "-q", "--no-index", p)
		cmd.Dir = dir
		if err := cmd.Run(); err != nil {
			t.Errorf("%s is not ignored by .gitignore", p)
		}
	}
	ls := exec.Command("git", "ls-files", "-z")
	ls.Dir = dir
	out, err := ls.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		fi, err := os.Stat(dir + "/" + f)
		if err != nil {
			continue // deleted in the working tree
		}
		if fi.Size() > 2<<20 {
			t.Errorf("%s is tracked and %d bytes: build outputs and data stay out of the repository", f, fi.Size())
		}
		if fi.Mode()&0o111 != 0 && !strings.HasSuffix(f, ".sh") && !strings.HasPrefix(f, ".ci/") && !strings.HasPrefix(f, "bench/") {
			b, _ := os.ReadFile(dir + "/" + f)
			if len(b) > 4 && string(b[:4]) == "\x7fELF" {
				t.Errorf("%s is a tracked executable", f)
			}
		}
	}
}
