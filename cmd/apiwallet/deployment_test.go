package main_test

// docs/DEPLOYMENT.md's multi-instance path, followed on real processes: the
// environment its shell block exports, `apiwallet migrate` once, two
// `serve` instances on one PostgreSQL and Redis, and Debian's nginx in
// front with the configuration read from the document (and the TLS lines
// of its TLS section), so that the document cannot drift from what works.

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// deploymentDoc returns the section of docs/DEPLOYMENT.md under heading, up
// to the next heading of the same level.
func deploymentDoc(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "DEPLOYMENT.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("docs/DEPLOYMENT.md has no %q", heading)
	}
	doc = doc[i+len(heading)+2:]
	if j := strings.Index(doc, "\n## "); j >= 0 {
		doc = doc[:j]
	}
	return doc
}

// codeBlocks returns the fenced blocks of section in language lang.
func codeBlocks(section, lang string) []string {
	re := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(section, -1) {
		out = append(out, m[1])
	}
	return out
}

// exportedEnv returns the variables a shell block sets with `export`, in
// order; values may be in single quotes.
func exportedEnv(t *testing.T, block string) [][2]string {
	t.Helper()
	var out [][2]string
	tok := regexp.MustCompile(`([A-Z_][A-Z0-9_]*)=('[^']*'|\S+)`)
	for _, line := range strings.Split(block, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "export ")
		if !ok {
			continue
		}
		for _, m := range tok.FindAllStringSubmatch(rest, -1) {
			out = append(out, [2]string{m[1], strings.Trim(m[2], "'")})
		}
	}
	if len(out) == 0 {
		t.Fatal("the multi-instance section exports no variables")
	}
	return out
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wallet.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// startNginx runs nginx in the foreground from its own directory with
// conf (an http-block snippet, as in conf.d) and returns when it accepts
// connections on addr.
func startNginx(t *testing.T, nginx, dir, snippet, addr string) {
	t.Helper()
	var user string
	if os.Geteuid() == 0 {
		user = "user nobody nogroup;" // the workers drop root
	}
	main := fmt.Sprintf(`%s
worker_processes 2;
pid %[2]s/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[2]s/apiwallet.conf;
}
`, user, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "apiwallet.conf"), []byte(snippet), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginx, "-t", "-p", dir+"/", "-c", filepath.Join(dir, "nginx.conf"), "-e", "stderr").CombinedOutput(); err != nil {
		t.Fatalf("nginx -t rejects DEPLOYMENT.md's configuration: %v\n%s\n%s", err, out, snippet)
	}
	cmd := exec.Command(nginx, "-p", dir+"/", "-c", filepath.Join(dir, "nginx.conf"), "-e", "stderr", "-g", "daemon off;")
	logs := &testenv.LogBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("nginx:\n%s", logs.String())
		}
	})
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("nginx does not listen on %s:\n%s", addr, logs.String())
		}
	}
}

func TestDeploymentMultiInstanceBehindNginx(t *testing.T) {
	nginx := testenv.RequireNginx(t)
	dsn := testenv.PostgresURL(t)
	redisURL := testRedisDB(t, 14)
	section := deploymentDoc(t, "## Several instances behind nginx")

	// nginx's directory must be reachable by its workers, who are nobody.
	dir, err := os.MkdirTemp("", "apiwallet-deploy")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	secrets := t.TempDir()
	for name, v := range map[string]string{"jwt_secret": strings.Repeat("7", 64) + "\n", "encryption_key": strings.Repeat("5e", 32) + "\n"} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lbPort, tlsPort := freePort(t), freePort(t)
	gateway := fmt.Sprintf("https://127.0.0.1:%d", tlsPort)

	// The environment the document exports, with this machine's servers
	// and files in place of its examples.
	stub := newAuthStub(t)
	env := []string{"OPENAI_BASE_URL=" + stub.URL}
	exported := map[string]bool{}
	var exports string
	for _, b := range codeBlocks(section, "sh") {
		if strings.Contains(b, "export ") {
			exports = b
			break
		}
	}
	for _, kv := range exportedEnv(t, exports) {
		k, v := kv[0], kv[1]
		exported[k] = true
		switch k {
		case "DATABASE_URL":
			v = dsn
		case "REDIS_URL":
			v = redisURL
		case "JWT_SECRET_FILE":
			v = filepath.Join(secrets, "jwt_secret")
		case "ENCRYPTION_KEY_FILE":
			v = filepath.Join(secrets, "encryption_key")
		case "GATEWAY_URL":
			v = gateway
		}
		env = append(env, k+"="+v)
	}
	for _, k := range []string{"APP_ENV", "DATABASE_URL", "REDIS_URL", "JWT_SECRET_FILE", "ENCRYPTION_KEY_FILE", "HOST", "TRUSTED_PROXIES", "APIWALLET_INSTANCES"} {
		if !exported[k] {
			t.Fatalf("the multi-instance section no longer exports %s", k)
		}
	}

	// `./apiwallet migrate` once, then two `serve`.
	if out, code := run(t, t.TempDir(), env, "migrate"); code != 0 || !strings.Contains(out, "postgres: applied") {
		t.Fatalf("migrate: exit %d\n%s", code, out)
	}
	w1 := startWallet(t, t.TempDir(), env...)
	w2 := startWallet(t, t.TempDir(), env...)
	w1.waitHealth(t, 20*time.Second, "healthy")
	w2.waitHealth(t, 20*time.Second, "healthy")

	// The document's nginx configuration, with the test's ports, and the
	// TLS lines of the TLS section in its server block.
	confs := codeBlocks(section, "nginx")
	if len(confs) != 1 {
		t.Fatalf("%d nginx blocks in the multi-instance section, want 1", len(confs))
	}
	conf := confs[0]
	for old, new := range map[string]string{
		"127.0.0.1:6790": strings.TrimPrefix(w1.url, "http://"),
		"127.0.0.1:6791": strings.TrimPrefix(w2.url, "http://"),
		"listen 80;":     fmt.Sprintf("listen 127.0.0.1:%d;", lbPort),
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("the nginx configuration no longer has %q", old)
		}
		conf = strings.Replace(conf, old, new, 1)
	}
	tlsLines := codeBlocks(deploymentDoc(t, "## TLS"), "text")
	if len(tlsLines) != 1 {
		t.Fatalf("%d text blocks in the TLS section, want the nginx lines", len(tlsLines))
	}
	certFile, keyFile, pool := selfSigned(t, dir)
	tlsConf := regexp.MustCompile(`listen 443 `).ReplaceAllString(tlsLines[0], fmt.Sprintf("listen 127.0.0.1:%d ", tlsPort))
	tlsConf = regexp.MustCompile(`(ssl_certificate\s+)\S+;`).ReplaceAllString(tlsConf, "${1}"+certFile+";")
	tlsConf = regexp.MustCompile(`(ssl_certificate_key\s+)\S+;`).ReplaceAllString(tlsConf, "${1}"+keyFile+";")
	if !strings.Contains(tlsConf, certFile) || !strings.Contains(tlsConf, keyFile) || strings.Contains(tlsConf, "443") {
		t.Fatalf("the TLS lines did not take the test's files and port:\n%s", tlsConf)
	}
	conf = strings.Replace(conf, "server_name _;", "server_name _;\n"+tlsConf, 1)
	startNginx(t, nginx, dir, conf, fmt.Sprintf("127.0.0.1:%d", tlsPort))

	c := &cluster{t: t, wallets: []*wallet{w1, w2}, client: &http.Client{Timeout: 20 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}}
	plain := fmt.Sprintf("http://127.0.0.1:%d", lbPort)

	// Over plain HTTP, production answers probes and refuses the API: the
	// wallets believe nginx's X-Forwarded-Proto.
	c.must(200, "GET", plain+"/monitoring/health", "", nil)
	st, _, body, err := c.do("POST", plain+"/auth/login", "", map[string]string{"email": "x@example.com", "password": "whatever password"})
	if err != nil || st != 403 || !strings.Contains(string(body), "https-required") {
		t.Fatalf("plain-HTTP login through nginx: %d %v %s", st, err, body)
	}

	// Over TLS, the first session: register, store a key, make a token,
	// call the upstream through nginx and the wallets.
	const secret = "sk-deploy-0123456789abcdef"
	reg := c.must(201, "POST", gateway+"/auth/register", "", map[string]string{
		"email": "ops@example.com", "password": "correct horse battery", "name": "Ops"})
	jwt := reg["token"].(string)
	c.must(201, "POST", gateway+"/keys", jwt, map[string]any{"key": secret, "service": "openai", "tier": "paid"})
	tok := c.must(201, "POST", gateway+"/tokens", jwt, map[string]any{"name": "app", "services": []string{"openai"}})["token"].(string)

	// The live usage stream flows through nginx as events happen.
	events := make(chan string, 16)
	req, _ := http.NewRequest("GET", gateway+"/usage/live", nil)
	req.Header.Set("Authorization", "Bearer "+jwt)
	sse, err := c.client.Transport.RoundTrip(req)
	if err != nil || sse.StatusCode != 200 || !strings.HasPrefix(sse.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /usage/live through nginx: %v %v", err, sse)
	}
	defer sse.Body.Close()
	go func() {
		sc := bufio.NewScanner(sse.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event:") {
				events <- sc.Text()
			}
		}
	}()

	const calls = 20
	for i := range calls {
		req, _ := http.NewRequest("GET", gateway+"/proxy/openai/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		res, err := c.client.Do(req)
		if err != nil {
			t.Fatalf("call %d through nginx: %v", i, err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("X-Wallet-Key-Id") == "" {
			t.Fatalf("call %d through nginx: %d %v", i, res.StatusCode, res.Header)
		}
	}
	if got := stub.lastAuth(); got != "Bearer "+secret {
		t.Fatalf("the upstream got Authorization %q", got)
	}
	if n := stub.hits.Load(); n != calls {
		t.Fatalf("the upstream got %d calls, want %d", n, calls)
	}
	select {
	case e := <-events:
		if e != "event: usage" {
			t.Fatalf("first event %q", e)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no usage event through nginx within 15 s of the calls")
	}

	// Both instances served calls, and each saw the client's address
	// through nginx's X-Forwarded-For.
	for i, w := range c.wallets {
		if !w.waitLog(`"path":"/proxy/openai/v1/models"`) {
			t.Errorf("instance %d served no proxied call:\n%s", i+1, w.Logs())
		}
		if !w.waitLog(`"client_ip":"203.0.113.9"`) {
			t.Errorf("instance %d did not log the client's address from X-Forwarded-For", i+1)
		}
	}

	// One instance stops (SIGTERM drains it); nginx sends the calls to the
	// other.
	if err := w1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w1.done:
	case <-time.After(20 * time.Second):
		t.Fatal("instance 1 did not stop within 20 s of SIGTERM")
	}
	for i := range 6 {
		st, _, b, err := c.do("GET", gateway+"/proxy/openai/v1/models", tok, nil)
		if err != nil || st != 200 {
			t.Fatalf("call %d with one instance down: %d %v %s", i, st, err, b)
		}
	}
	t.Logf("two instances behind nginx (TLS on %d): %d calls, both served; with one stopped the other took over", tlsPort, stub.hits.Load())
}

// The systemd unit of DEPLOYMENT.md's single-binary path: its environment
// starts a production wallet that serves HTTPS with secrets from files,
// keeps its database in the data directory and generates nothing, and
// `apiwallet healthcheck` with that environment finds it healthy.
func TestDeploymentSystemdUnit(t *testing.T) {
	units := codeBlocks(deploymentDoc(t, "## Single binary"), "ini")
	if len(units) != 1 {
		t.Fatalf("%d ini blocks in the single-binary section, want the unit", len(units))
	}
	etc, data := t.TempDir(), t.TempDir()
	certFile, keyFile, _ := selfSigned(t, etc)
	_ = os.WriteFile(filepath.Join(etc, "jwt_secret"), []byte(strings.Repeat("9", 64)+"\n"), 0o600)
	_ = os.WriteFile(filepath.Join(etc, "encryption_key"), []byte(strings.Repeat("a1", 32)+"\n"), 0o600)
	files := map[string]string{
		"/etc/apiwallet/jwt_secret": filepath.Join(etc, "jwt_secret"), "/etc/apiwallet/encryption_key": filepath.Join(etc, "encryption_key"),
		"/etc/apiwallet/cert.pem": certFile, "/etc/apiwallet/key.pem": keyFile, "/var/lib/apiwallet": data,
	}
	var env []string
	var execStart string
	for _, line := range strings.Split(units[0], "\n") {
		if kv, ok := strings.CutPrefix(line, "Environment="); ok {
			k, v, _ := strings.Cut(kv, "=")
			if f, ok := files[v]; ok {
				v = f
			}
			env = append(env, k+"="+v)
		}
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			execStart = v
		}
	}
	if execStart != "/usr/local/bin/apiwallet serve" || !strings.Contains(units[0], "KillSignal=SIGTERM") {
		t.Fatalf("the unit runs %q", execStart)
	}
	port := freePort(t)
	env = append(env, fmt.Sprintf("PORT=%d", port))
	w := startWallet(t, t.TempDir(), env...)
	w.url = fmt.Sprintf("https://127.0.0.1:%d", port)
	var out string
	var code int
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(100 * time.Millisecond) {
		if out, code = run(t, t.TempDir(), env, "healthcheck"); code == 0 {
			break
		}
	}
	if code != 0 || !strings.Contains(out, "https://127.0.0.1:") || !strings.Contains(out, "healthy") {
		t.Fatalf("healthcheck with the unit's environment: exit %d\n%s\nwallet:\n%s", code, out, w.Logs())
	}
	if !strings.Contains(w.Logs(), `"production":true`) || !strings.Contains(w.Logs(), `"tls":true`) {
		t.Fatalf("the unit's wallet is not a production one serving TLS:\n%s", w.Logs())
	}
	if _, err := os.Stat(filepath.Join(data, "apiwallet.db")); err != nil {
		t.Fatalf("no database in the data directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "secrets.json")); err == nil {
		t.Fatal("the production wallet generated secrets.json")
	}
}

// DEPLOYMENT.md's PostgreSQL backup, run as written: pg_dump of a
// wallet's database, pg_restore into an empty one, and a wallet on the
// restored database with the same secrets opens the stored key.
func TestDeploymentPostgresBackupRestore(t *testing.T) {
	src := testenv.PostgresURL(t)
	dst := testenv.PostgresURL(t)
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			if testenv.CI() {
				t.Fatalf("no %s but CI=true (Debian's postgresql installs it)", tool)
			}
			t.Skipf("no %s on PATH", tool)
		}
	}
	var block string
	for _, b := range codeBlocks(deploymentDoc(t, "## Backups"), "sh") {
		if strings.Contains(b, "pg_dump") {
			block = b
		}
	}
	const example = "postgres://apiwallet@127.0.0.1:5432/apiwallet_restored"
	if !strings.Contains(block, example) {
		t.Fatalf("the backup block no longer restores into %s:\n%s", example, block)
	}

	stub := newAuthStub(t)
	env := append([]string{"DATABASE_URL=" + src, "OPENAI_BASE_URL=" + stub.URL}, clusterSecrets...)
	w := startWallet(t, t.TempDir(), env...)
	w.waitHealth(t, 20*time.Second, "healthy")
	c := &cluster{t: t, wallets: []*wallet{w}, client: &http.Client{Timeout: 10 * time.Second}}
	const secret = "sk-pgdump-0123456789abcdef"
	jwt := c.must(201, "POST", w.url+"/auth/register", "", map[string]string{
		"email": "pg@example.com", "password": "correct horse battery", "name": "PG"})["token"].(string)
	c.must(201, "POST", w.url+"/keys", jwt, map[string]any{"key": secret, "service": "openai", "tier": "paid"})
	tok := c.must(201, "POST", w.url+"/tokens", jwt, map[string]any{"name": "app", "services": []string{"openai"}})["token"].(string)

	// The document's commands, with the test's databases, while serving.
	cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+strings.ReplaceAll(block, example, dst))
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "DATABASE_URL="+src)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the backup commands: %v\n%s", err, out)
	}

	restored := newAuthStub(t)
	w2 := startWallet(t, t.TempDir(), append([]string{"DATABASE_URL=" + dst, "OPENAI_BASE_URL=" + restored.URL}, clusterSecrets...)...)
	w2.waitHealth(t, 20*time.Second, "healthy")
	c.must(200, "POST", w2.url+"/auth/login", "", map[string]string{"email": "pg@example.com", "password": "correct horse battery"})
	c.must(200, "GET", w2.url+"/proxy/openai/v1/models", tok, nil)
	if got := restored.lastAuth(); got != "Bearer "+secret {
		t.Fatalf("the restored wallet sent Authorization %q", got)
	}
	if out, code := run(t, t.TempDir(), []string{"DATABASE_URL=" + dst}, "migrate", "--status"); code != 0 || !strings.Contains(out, "applied, 0 pending") {
		t.Fatalf("the restored database's migrations: exit %d\n%s", code, out)
	}
}
