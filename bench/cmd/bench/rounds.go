package main

import (
	"context"
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
	"strconv"
	"strings"
	"text/template"
	"time"
)

// procName is the process name of target kind in round rd: "floor" in the
// plain round, "floor-tls" in the TLS round, and so on.
func procName(kind string, rd *round) string {
	if rd.name == "plain" {
		return kind
	}
	return kind + "-" + rd.name
}

// startRound starts the round's proxies, pointed at upstream, and checks
// that each target answers one call with an injected key.
func (r *runner) startRound(ctx context.Context, rd *round, upstream string) error {
	r.logf("round %s: upstream %s, %d connections", rd.name, upstream, rd.conns)
	add := func(t *target) {
		rd.targets = append(rd.targets, t)
		r.targets = append(r.targets, t)
	}
	if r.want["direct"] {
		add(&target{name: "direct", proc: "upstream", url: upstream + path, auth: "Bearer " + keyPrefix + "direct"})
	}
	if r.want["nginx"] {
		u, err := r.startNginx(ctx, rd, upstream)
		if err != nil {
			return err
		}
		add(&target{name: "nginx", proc: procName("nginx", rd), url: u + path, auth: clientCredential})
	}
	if r.want["floor"] {
		u, err := r.startFloor(ctx, rd, upstream)
		if err != nil {
			return err
		}
		add(&target{name: "floor", proc: procName("floor", rd), url: u + path, auth: clientCredential})
	}
	if r.want["wallet"] && r.walletSkip == "" {
		name := procName("wallet", rd)
		r.logf("%s: starting the wallet and storing %d key(s)", name, r.cfg.Keys[0])
		w, err := r.startWallet(ctx, name, upstream, r.cfg.Keys[0])
		if reason, ok := isSkip(err); ok {
			r.skipWallet(reason)
		} else if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.skipWallet(fmt.Sprintf("it could not be prepared: %v", err))
		} else {
			if rd.name == "plain" {
				r.wallet = w
			}
			add(&target{name: "wallet", proc: name, w: w, url: w.url(), auth: "Bearer " + w.token})
		}
	}
	for _, t := range rd.targets {
		if err := r.check(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// measureRound runs the round's throughput runs and, when the round has
// them, its constant-rate runs, each ROUNDS times, interleaved across
// targets so that drift in the machine's state spreads over all of them.
// From here on a target that fails is reported as failed and the others
// go on: the wallet under test may crash or stall.
func (r *runner) measureRound(ctx context.Context, rd *round) error {
	for i := range r.cfg.Rounds {
		for _, t := range rd.targets {
			if t.failed != "" {
				continue
			}
			m, err := r.measure(ctx, t, rd.conns, fmt.Sprintf("%s round, %d/%d", rd.name, i+1, r.cfg.Rounds))
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.fail(t, err)
				continue
			}
			t.runs = append(t.runs, m)
		}
	}
	if !rd.rate {
		return nil
	}
	for i := range r.cfg.Rounds {
		for _, t := range rd.targets {
			if t.failed != "" {
				continue
			}
			r.settle(t)
			r.logf("%s: constant rate %d req/s for %s (%s round, %d/%d)", t.proc, r.cfg.Rate, r.cfg.RateDuration, rd.name, i+1, r.cfg.Rounds)
			stopRSS := r.sampleWallet(t)
			cpu0 := r.cpuSnapshot()
			res, err := r.runRate(ctx, t.url, t.auth)
			cpu1 := r.cpuSnapshot()
			stopRSS()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.fail(t, err)
				continue
			}
			run := rateRun{round: i, res: res, otherCPU: otherCPU(cpu0, cpu1),
				cpuPerCall: cpuPerCall(cpu0, cpu1, t.process(), res.OK+res.Non2xx)}
			t.rates = append(t.rates, run)
			r.logf("%s: p50 %.2f ms, p99 %.2f ms, CPU per call %s, other processes' CPU %s",
				t.proc, res.P50Ms, res.P99Ms, fmtMicros(run.cpuPerCall), fmtShare(run.otherCPU))
		}
	}
	pickRateRuns(rd.target("direct"), rd.targets)
	return nil
}

// stopProc stops the started process named name, if there is one.
func (r *runner) stopProc(name string) {
	for _, p := range r.procs {
		if p.name == name {
			p.stop()
		}
	}
}

// writeCert makes the stub's self-signed certificate for 127.0.0.1 (and
// localhost, the name nginx verifies) in the run's directory, and has the
// runner's own HTTP clients trust it. The other clients are given it as
// SSL_CERT_FILE (Go's) or proxy_ssl_trusted_certificate (nginx's).
func (r *runner) writeCert() (string, error) {
	dir := filepath.Join(r.tmp, "tls")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "apiwallet bench upstream"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true, // its own root, so that it can be trusted as one
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	certPath := filepath.Join(dir, "cert.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return "", err
	}
	// Readable by nginx's workers, which drop to nobody under root; it is a
	// throwaway key for loopback.
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o644); err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	http.DefaultTransport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return certPath, nil
}

func (r *runner) startStub(ctx context.Context) error {
	ports := make([]int, 3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	args := []string{"-listen", addr(0), "-key-prefix", keyPrefix}
	if r.cfg.TLS {
		args = append(args, "-tls-listen", addr(1), "-tls-cert", r.certFile,
			"-tls-key", filepath.Join(filepath.Dir(r.certFile), "key.pem"), "-h2="+strconv.FormatBool(r.cfg.TLSH2))
		r.stubTLS = "https://" + addr(1)
	}
	if r.cfg.LatencyMs > 0 {
		args = append(args, "-slow-listen", addr(2), "-delay", (time.Duration(r.cfg.LatencyMs) * time.Millisecond).String())
		r.stubSlow = "http://" + addr(2)
	}
	p, err := r.start("upstream", r.bin("upstream"), args, os.Environ())
	if err != nil {
		return err
	}
	r.stubURL = "http://" + addr(0)
	for _, u := range []string{r.stubURL, r.stubTLS, r.stubSlow} {
		if u == "" {
			continue
		}
		if err := waitHTTP(ctx, p, u+"/__bench/stats", nil, http.StatusOK, 10*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// goRuntimeEnv is what the floor shares with the wallet of its
// environment: the Go runtime's settings an operator gives the wallet
// through WALLET_ENV, so that both collect garbage alike.
func (r *runner) goRuntimeEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if r.certFile != "" {
		env = append(env, "SSL_CERT_FILE="+r.certFile)
	}
	for _, kv := range r.cfg.WalletEnv {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG":
			env = append(env, kv)
		}
	}
	return env
}

func (r *runner) startFloor(ctx context.Context, rd *round, upstream string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := r.start(procName("floor", rd), r.bin("floor"), []string{
		"-listen", addr, "-upstream", upstream,
		"-auth", "Bearer " + keyPrefix + "floor", "-conns", strconv.Itoa(rd.conns),
	}, r.goRuntimeEnv())
	if err != nil {
		return "", err
	}
	u := "http://" + addr
	return u, waitHTTP(ctx, p, u+path, http.Header{"Authorization": {clientCredential}}, http.StatusOK, 10*time.Second)
}

// nginxParams fill nginx.conf.tmpl.
type nginxParams struct {
	Dir, User, Listen, Upstream, Auth string
	Workers, Keepalive                int
	TLS                               bool
	Cert                              string // trusted for the upstream, with TLS
}

func (r *runner) startNginx(ctx context.Context, rd *round, upstream string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	name := procName("nginx", rd)
	dir := filepath.Join(r.tmp, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	host := strings.TrimPrefix(strings.TrimPrefix(upstream, "http://"), "https://")
	p := nginxParams{
		Dir: dir, Listen: fmt.Sprintf("127.0.0.1:%d", port), Upstream: host,
		Auth: "Bearer " + keyPrefix + "nginx", Workers: r.cfg.NginxWorkers, Keepalive: rd.conns,
		TLS: strings.HasPrefix(upstream, "https://"), Cert: r.certFile,
	}
	if os.Geteuid() == 0 {
		// A root master drops its workers to an unprivileged user, which
		// must be able to reach the temp paths.
		p.User = "nobody nogroup"
		if err := os.Chmod(r.tmp, 0o755); err != nil {
			return "", err
		}
	}
	var conf strings.Builder
	if err := template.Must(template.New("nginx").Parse(nginxConf)).Execute(&conf, p); err != nil {
		return "", err
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		return "", err
	}
	if out, err := exec.CommandContext(ctx, r.nginx, "-t", "-p", dir+"/", "-c", confPath, "-e", "stderr").CombinedOutput(); err != nil {
		return "", fmt.Errorf("nginx -t rejected %s: %v\n%s", confPath, err, out)
	}
	pr, err := r.start(name, r.nginx, []string{"-p", dir + "/", "-c", confPath, "-e", "stderr"}, os.Environ())
	if err != nil {
		return "", err
	}
	u := "http://" + p.Listen
	return u, waitHTTP(ctx, pr, u+path, http.Header{"Authorization": {clientCredential}}, http.StatusOK, 10*time.Second)
}
