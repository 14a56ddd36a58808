package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// PostgresServer is a PostgreSQL cluster of a test's own, for tests that
// stop and start the database under load: the shared server must not go
// away under other tests.
type PostgresServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	// asPostgres runs the server binaries as the postgres user, since
	// initdb refuses to run as root.
	asPostgres bool
}

// pgBinDir finds the PostgreSQL server binaries: where pg_config says, or
// Debian's place.
func pgBinDir() string {
	var dirs []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(debian)))
	for _, d := range append(dirs, debian...) {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

// StartPostgres initialises a throw-away cluster on a free loopback port,
// starts it and removes it when t ends. It skips t (fails it under
// CI=true) without the PostgreSQL server binaries.
func StartPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	bin := pgBinDir()
	if bin == "" {
		if CI() {
			t.Fatal("the PostgreSQL server binaries (initdb) are not installed but CI=true: this test must run in CI")
		}
		t.Skip("initdb not found; skipping")
	}
	s := &PostgresServer{t: t, bin: bin, asPostgres: os.Geteuid() == 0}
	// Not t.TempDir: the postgres user must reach the directory.
	dir, err := os.MkdirTemp("", "apiwallet-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.dir = filepath.Join(dir, "data")
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if s.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, initdb needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(s.dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s.run("initdb", "-D", s.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8")
	s.Start()
	t.Cleanup(func() { s.stop("immediate") })
	return s
}

// run runs one of the server binaries and fails the test on error.
func (s *PostgresServer) run(name string, args ...string) {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	if s.asPostgres {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(s.bin, name)}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// URL is the URL of the cluster's postgres database.
func (s *PostgresServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Start starts the server (again, after Stop) and returns once it accepts
// connections.
func (s *PostgresServer) Start() {
	s.t.Helper()
	s.run("pg_ctl", "-D", s.dir, "-w", "-l", filepath.Join(s.dir, "server.log"), "-o",
		fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off", s.port, s.dir), "start")
}

// Stop shuts the server down at once (pg_ctl -m immediate: no checkpoint,
// every connection cut, as a crash would) and waits until it has.
func (s *PostgresServer) Stop() {
	s.t.Helper()
	s.stop("immediate")
}

func (s *PostgresServer) stop(mode string) {
	cmd := exec.Command(filepath.Join(s.bin, "pg_ctl"), "-D", s.dir, "-w", "-m", mode, "stop")
	if s.asPostgres {
		cmd = exec.Command("runuser", "-u", "postgres", "--", filepath.Join(s.bin, "pg_ctl"), "-D", s.dir, "-w", "-m", mode, "stop")
	}
	_ = cmd.Run()
}
