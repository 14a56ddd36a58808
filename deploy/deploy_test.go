// Package deploy_test checks the deployment files against each other and
// against docs/DEPLOYMENT.md: docker-compose.yml as Docker Compose loads it
// (compose-go, the loader `docker compose` itself uses, with its schema),
// the Dockerfile, the Prometheus and Grafana provisioning, the secrets
// script, and the variables the wallet is given. No Docker engine is
// needed; where the docker client has its compose plugin, `docker compose
// config -q` must accept the file too.
package deploy_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/apikeywallet/apiwallet/internal/config"
)

// root is the repository, one directory up.
var root = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Dir(wd)
}()

// composeEnv is what make deploy passes besides the user's environment.
var composeEnv = []string{"APIWALLET_UID=1000", "APIWALLET_GID=1000"}

func loadProject(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithEnv(composeEnv), cli.WithName("apiwallet"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("docker-compose.yml has no service %q, which docs/DEPLOYMENT.md names", name)
	}
	return s
}

// docTable returns the rows of the first Markdown table after heading in
// docs/DEPLOYMENT.md whose header row begins with firstColumn.
func docTable(t *testing.T, heading, firstColumn string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docs", "DEPLOYMENT.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("docs/DEPLOYMENT.md has no %q", heading)
	}
	var rows [][]string
	in := false
	sc := bufio.NewScanner(strings.NewReader(doc[i:]))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			if in {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for k := range cells {
			cells[k] = strings.TrimSpace(cells[k])
		}
		if !in {
			if cells[0] == firstColumn {
				in = true
			}
			continue
		}
		if strings.HasPrefix(cells[0], "---") {
			continue
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		t.Fatalf("docs/DEPLOYMENT.md: no table %q under %q", firstColumn, heading)
	}
	return rows
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// spans returns the `code` spans of a table cell.
func spans(cell string) []string {
	var out []string
	for _, m := range codeSpan.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

// The services table of DEPLOYMENT.md is the Compose file: each service
// with its image, published port, volume and health check, and no service
// the table leaves out.
func TestComposeServicesAsDocumented(t *testing.T) {
	p := loadProject(t)
	rows := docTable(t, "## Docker Compose", "service")
	var documented []string
	for _, r := range rows {
		if len(r) != 5 {
			t.Fatalf("services row %v: want 5 cells", r)
		}
		name := spans(r[0])[0]
		documented = append(documented, name)
		s := service(t, p, name)

		if strings.HasPrefix(r[1], "built from") {
			if s.Build == nil || s.Build.Dockerfile != "Dockerfile" || s.Build.Context != root {
				t.Errorf("%s: documented as built from the Dockerfile; build is %+v", name, s.Build)
			}
		} else if img := spans(r[1])[0]; s.Image != img {
			t.Errorf("%s: image %q, documented %q", name, s.Image, img)
		}

		var published []string
		for _, port := range s.Ports {
			published = append(published, port.Published)
		}
		if r[2] == "none" {
			if len(published) > 0 {
				t.Errorf("%s: documented unpublished, publishes %v", name, published)
			}
		} else if want := spans(r[2])[0]; !slices.Equal(published, []string{want}) {
			t.Errorf("%s: publishes %v, documented %s", name, published, want)
		}

		vs := spans(r[3])
		if len(vs) != 2 {
			t.Fatalf("%s: volume cell %q: want `name` at `/path`", name, r[3])
		}
		if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Type == types.VolumeTypeVolume && v.Source == vs[0] && v.Target == vs[1]
		}) {
			t.Errorf("%s: no volume %s at %s: %+v", name, vs[0], vs[1], s.Volumes)
		}
		if _, ok := p.Volumes[vs[0]]; !ok {
			t.Errorf("volume %s is not declared at the top level", vs[0])
		}

		if r[4] == "none" {
			if s.HealthCheck != nil && !s.HealthCheck.Disable {
				t.Errorf("%s: documented without a health check, has %v", name, s.HealthCheck.Test)
			}
			continue
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 {
			t.Errorf("%s: no health check, documented %s", name, r[4])
			continue
		}
		test := strings.Join(s.HealthCheck.Test, " ")
		for _, word := range strings.Fields(spans(r[4])[0]) {
			if !strings.Contains(test, word) {
				t.Errorf("%s: health check %q does not run %q", name, test, word)
			}
		}
	}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), sorted(documented)) {
		t.Errorf("docker-compose.yml runs %v; DEPLOYMENT.md documents %v", got, documented)
	}

	// The wallet waits for healthy storage; the storage is not published.
	w := service(t, p, "wallet")
	for _, dep := range []string{"postgres", "redis"} {
		if d, ok := w.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("wallet depends_on %s: %+v, want condition service_healthy", dep, w.DependsOn[dep])
		}
	}
	if w.User != "1000:1000" {
		t.Errorf("wallet user %q with APIWALLET_UID/GID=1000", w.User)
	}
	if r := service(t, p, "redis"); !strings.Contains(strings.Join(r.Command, " "), "--appendonly yes") {
		t.Errorf("redis command %v: want --appendonly yes", r.Command)
	}
	for _, name := range []string{"prometheus", "grafana"} {
		for _, port := range service(t, p, name).Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s published on %q; documented on loopback only", name, port.HostIP)
			}
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// The secrets table: each secret is a file under deploy/secrets/, mounted
// into the service that reads it, whose variable points at it; the
// wallet's secrets never appear as plain environment values.
func TestComposeSecretsAsDocumented(t *testing.T) {
	p := loadProject(t)
	for _, r := range docTable(t, "## Docker Compose", "secret") {
		name, file, inside := spans(r[0])[0], spans(r[1])[0], spans(r[2])[0]
		sec, ok := p.Secrets[name]
		if !ok {
			t.Errorf("no secret %q", name)
			continue
		}
		if sec.File != filepath.Join(root, file) {
			t.Errorf("secret %s: file %s, documented %s", name, sec.File, file)
		}
		if inside != "/run/secrets/"+name {
			t.Errorf("secret %s documented at %s", name, inside)
		}
		readers := spans(r[3])
		s := service(t, p, readers[0])
		if !slices.ContainsFunc(s.Secrets, func(c types.ServiceSecretConfig) bool { return c.Source == name }) {
			t.Errorf("service %s does not mount secret %s", s.Name, name)
		}
		if len(readers) > 1 {
			v := readers[1]
			if v == "passfile" {
				if !strings.Contains(*s.Environment["DATABASE_URL"], "passfile="+inside) {
					t.Errorf("DATABASE_URL does not name the passfile %s", inside)
				}
			} else if got := s.Environment[v]; got == nil || *got != inside {
				t.Errorf("%s: %s is not %s, as documented", s.Name, v, inside)
			}
		}
	}
	w := service(t, p, "wallet")
	for _, plain := range []string{"JWT_SECRET", "ENCRYPTION_KEY", "DATABASE_PASSWORD"} {
		if _, ok := w.Environment[plain]; ok {
			t.Errorf("the wallet gets %s in its environment", plain)
		}
	}
	if strings.Contains(*w.Environment["DATABASE_URL"], ":@") || regexp.MustCompile(`//[^/@]*:[^/@]*@`).MatchString(*w.Environment["DATABASE_URL"]) {
		t.Errorf("DATABASE_URL carries a password: %s", *w.Environment["DATABASE_URL"])
	}
}

// Every bind mount's source is in the repository, and the mounts table of
// DEPLOYMENT.md names each of them.
func TestComposeMountsAsDocumented(t *testing.T) {
	p := loadProject(t)
	type mount struct{ service, source, target string }
	var binds []mount
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				rel, err := filepath.Rel(root, v.Source)
				if err != nil {
					t.Fatal(err)
				}
				binds = append(binds, mount{s.Name, filepath.ToSlash(rel), strings.TrimSuffix(v.Target, "/")})
				if !v.ReadOnly {
					t.Errorf("%s mounts %s writable", s.Name, rel)
				}
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s, which is not in the repository: %v", s.Name, rel, err)
				}
			}
		}
	}
	var documented []mount
	for _, r := range docTable(t, "## Docker Compose", "host path") {
		documented = append(documented, mount{spans(r[1])[0], strings.TrimSuffix(spans(r[0])[0], "/"), strings.TrimSuffix(spans(r[2])[0], "/")})
	}
	key := func(m mount) string { return m.service + " " + m.source + " " + m.target }
	var got, want []string
	for _, m := range binds {
		got = append(got, key(m))
	}
	for _, m := range documented {
		want = append(want, key(m))
	}
	if !slices.Equal(sorted(got), sorted(want)) {
		t.Errorf("bind mounts %v;\nDEPLOYMENT.md documents %v", sorted(got), sorted(want))
	}
}

// Prometheus scrapes the wallet service's port and loads the rules from
// where they are mounted; Grafana's data source is the Prometheus service
// and its dashboards are read from where they are mounted.
func TestMonitoringProvisioning(t *testing.T) {
	p := loadProject(t)
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "deploy/prometheus/prometheus.yml", &prom)
	if !slices.Contains(prom.RuleFiles, "/etc/prometheus/rules/*.yml") {
		t.Errorf("rule_files %v: want /etc/prometheus/rules/*.yml", prom.RuleFiles)
	}
	mountedAt(t, service(t, p, "prometheus"), "deploy/prometheus/rules", "/etc/prometheus/rules")
	mountedAt(t, service(t, p, "prometheus"), "deploy/prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml")
	found := false
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, "wallet:6789") && sc.MetricsPath == "/metrics" {
				found = true
			}
		}
	}
	if !found {
		t.Error("prometheus.yml does not scrape wallet:6789/metrics")
	}
	w := service(t, p, "wallet")
	if w.Environment["ENABLE_METRICS"] == nil || *w.Environment["ENABLE_METRICS"] != "true" {
		t.Error("the wallet does not serve /metrics (ENABLE_METRICS)")
	}
	if w.Environment["PORT"] == nil || *w.Environment["PORT"] != "6789" {
		t.Error("the wallet does not listen on 6789")
	}

	var ds struct {
		Datasources []struct {
			Name, Type, URL, UID string
			IsDefault            bool `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	files, _ := filepath.Glob(filepath.Join(root, "deploy/grafana/provisioning/datasources/*.yml"))
	if len(files) == 0 {
		t.Fatal("no Grafana data source")
	}
	readYAML(t, files[0], &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" || !ds.Datasources[0].IsDefault {
		t.Errorf("Grafana data sources %+v: want the default one, prometheus at http://prometheus:9090", ds.Datasources)
	}
	var dash struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		}
	}
	files, _ = filepath.Glob(filepath.Join(root, "deploy/grafana/provisioning/dashboards/*.yml"))
	if len(files) == 0 {
		t.Fatal("no Grafana dashboard provider")
	}
	readYAML(t, files[0], &dash)
	if len(dash.Providers) != 1 || dash.Providers[0].Type != "file" || dash.Providers[0].Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("Grafana dashboard providers %+v", dash.Providers)
	}
	mountedAt(t, service(t, p, "grafana"), "deploy/grafana/dashboards", "/var/lib/grafana/dashboards")
	mountedAt(t, service(t, p, "grafana"), "deploy/grafana/provisioning", "/etc/grafana/provisioning")
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func mountedAt(t *testing.T, s types.ServiceConfig, source, target string) {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && strings.TrimSuffix(v.Source, "/") == filepath.Join(root, source) && strings.TrimSuffix(v.Target, "/") == target {
			return
		}
	}
	t.Errorf("%s does not mount %s at %s", s.Name, source, target)
}

// Every variable the wallet is given is one internal/config reads, and the
// wallet's configuration loads from them, with the secrets read from files.
func TestComposeWalletEnvironment(t *testing.T) {
	p := loadProject(t)
	w := service(t, p, "wallet")
	src, err := os.ReadFile(filepath.Join(root, "internal", "config", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`"([A-Z][A-Z0-9_]+)"`).FindAllStringSubmatch(string(src), -1) {
		known[m[1]] = true
	}
	fileVars := regexp.MustCompile(`(?s)var fileSecrets = \[\]string\{(.*?)\}`).FindStringSubmatch(string(src))
	if fileVars == nil {
		t.Fatal("internal/config no longer lists fileSecrets")
	}

	dir := t.TempDir()
	var environ []string
	for k, v := range w.Environment {
		base, isFile := strings.CutSuffix(k, "_FILE")
		switch {
		case isFile && strings.Contains(fileVars[1], `"`+base+`"`):
			// Stand the secret in: the real one is generated by make deploy.
			f := filepath.Join(dir, base)
			content := strings.Repeat("ab", 32) + "\n"
			if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			environ = append(environ, k+"="+f)
			continue
		case !known[k]:
			t.Errorf("the wallet is given %s, which internal/config does not read", k)
		}
		if v != nil {
			environ = append(environ, k+"="+*v)
		}
	}
	cfg, err := config.Load(environ)
	if err != nil {
		t.Fatalf("the wallet's configuration from docker-compose.yml: %v", err)
	}
	if err := cfg.LoadSecrets(nil); err != nil || cfg.GeneratedSecrets {
		t.Fatalf("secrets: %v (generated: %v)", err, cfg.GeneratedSecrets)
	}
	if cfg.RedisURL != "redis://redis:6379/0" || !strings.HasPrefix(cfg.DatabaseURL, "postgres://apiwallet@postgres:5432/apiwallet") ||
		!cfg.EnableMetrics || cfg.Port != 6789 || cfg.DataDir != "/data" {
		t.Errorf("configuration %+v", cfg)
	}
}

// instruction is one Dockerfile instruction: its keyword and arguments,
// continuation lines joined.
type instruction struct{ cmd, args string }

func parseDockerfile(t *testing.T) []instruction {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if s, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	return out
}

// The Dockerfile: a Go build stage with a module cache making a static,
// trimmed binary, and a distroless final stage running it as a non-root
// user with /data, port 6789 and a health check that calls the binary.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t)
	var stages [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build[0].args, "golang:") {
		t.Errorf("build stage FROM %q", build[0].args)
	}
	var buildRun string
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			buildRun = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w`, "--mount=type=cache,target=/go/pkg/mod", "./cmd/apiwallet"} {
		if !strings.Contains(buildRun, want) {
			t.Errorf("the go build step %q lacks %s", buildRun, want)
		}
	}
	if !strings.HasPrefix(final[0].args, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %q, want distroless/static", final[0].args)
	}
	got := map[string]string{}
	for _, in := range final {
		got[in.cmd] = in.args // the last of each counts
	}
	if u := got["USER"]; u != "65532:65532" {
		t.Errorf("USER %q, want 65532:65532", u)
	}
	if got["VOLUME"] != "/data" || got["EXPOSE"] != "6789" {
		t.Errorf("VOLUME %q, EXPOSE %q", got["VOLUME"], got["EXPOSE"])
	}
	if got["ENTRYPOINT"] != `["/apiwallet"]` || got["CMD"] != `["serve"]` {
		t.Errorf("ENTRYPOINT %s CMD %s", got["ENTRYPOINT"], got["CMD"])
	}
	hc := got["HEALTHCHECK"]
	_, cmd, ok := strings.Cut(hc, "CMD ")
	if !ok || !strings.HasPrefix(cmd, `["/apiwallet", "healthcheck"`) {
		t.Fatalf("HEALTHCHECK %q: want CMD [\"/apiwallet\", \"healthcheck\", ...]", hc)
	}
	var argv []string
	if err := yaml.Unmarshal([]byte(cmd), &argv); err != nil {
		t.Fatalf("HEALTHCHECK CMD %s: %v", cmd, err)
	}
	// Compose's health check is the same command.
	w := service(t, loadProject(t), "wallet")
	if !slices.Equal([]string(w.HealthCheck.Test), append([]string{"CMD"}, argv...)) {
		t.Errorf("compose health check %v, Dockerfile %v", w.HealthCheck.Test, argv)
	}

	// The command parses: against nothing listening it reports unhealthy
	// (exit 1), not a usage error (exit 2).
	bin := filepath.Join(t.TempDir(), "apiwallet")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(root, "cmd", "apiwallet")).CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	c := exec.Command(bin, argv[1:]...)
	c.Env = []string{"PORT=1", "PATH=" + os.Getenv("PATH")}
	out, err := c.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "unhealthy") {
		t.Errorf("%v against a closed port: %v\n%s", argv, err, out)
	}
}

// .dockerignore keeps secrets, data and the repository's history out of
// the build context, and leaves in what the build needs.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var pats []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			pats = append(pats, l)
		}
	}
	ignored := func(path string) bool {
		for _, p := range pats {
			if ok, _ := filepath.Match(p, path); ok || strings.HasPrefix(path, p+"/") {
				return true
			}
		}
		return false
	}
	for _, p := range []string{".git", "data", "deploy/secrets/encryption_key", "bin"} {
		if !ignored(p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd/apiwallet/main.go", "internal/config/config.go", "key.go"} {
		if ignored(p) {
			t.Errorf(".dockerignore leaves %s out of the build", p)
		}
	}
}

// deploy/secrets.sh makes each secret once, 0600 in a 0700 directory, in
// the form the wallet accepts, and a rerun changes nothing.
func TestSecretsScript(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	run := func() string {
		out, err := exec.Command("sh", filepath.Join(root, "deploy", "secrets.sh"), dir).CombinedOutput()
		if err != nil {
			t.Fatalf("secrets.sh: %v\n%s", err, out)
		}
		return string(out)
	}
	run()
	read := func() map[string]string {
		m := map[string]string{}
		for _, n := range []string{"jwt_secret", "encryption_key", "postgres_password", "pgpass"} {
			p := filepath.Join(dir, n)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v", n, fi.Mode().Perm())
			}
			b, _ := os.ReadFile(p)
			m[n] = string(b)
		}
		return m
	}
	first := read()
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v", fi.Mode().Perm())
	}
	if first["jwt_secret"] == first["encryption_key"] {
		t.Error("the two secrets are equal")
	}
	if want := "postgres:5432:apiwallet:apiwallet:" + first["postgres_password"]; first["pgpass"] != want {
		t.Errorf("pgpass %q does not hold the password", first["pgpass"])
	}
	cfg, err := config.Load([]string{"APP_ENV=production",
		"JWT_SECRET_FILE=" + filepath.Join(dir, "jwt_secret"), "ENCRYPTION_KEY_FILE=" + filepath.Join(dir, "encryption_key")})
	if err != nil || len(cfg.JWTSecret) != 64 {
		t.Fatalf("the wallet does not accept the generated secrets: %v", err)
	}
	if out := run(); !strings.Contains(out, "kept as they are") {
		t.Errorf("second run: %s", out)
	}
	if second := read(); !mapsEqual(first, second) {
		t.Error("a second run changed the secrets")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// docker-compose.yml loads as Docker Compose loads it (compose-go checks
// it against the Compose schema), and where the docker client has its
// compose plugin, `docker compose config -q` accepts it too.
func TestComposeFileLoads(t *testing.T) {
	p := loadProject(t)
	t.Logf("compose-go: %d services, %d volumes, %d secrets", len(p.Services), len(p.Volumes), len(p.Secrets))
	if _, err := exec.LookPath("docker"); err != nil {
		t.Log("no docker client here: compose-go's check stands alone")
		return
	}
	if err := exec.Command("docker", "compose", "version").Run(); err != nil {
		t.Log("the docker client here has no compose plugin: compose-go's check stands alone")
		return
	}
	c := exec.Command("docker", "compose", "-f", filepath.Join(root, "docker-compose.yml"), "config", "-q")
	c.Env = append(os.Environ(), composeEnv...)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("docker compose config rejects docker-compose.yml: %v\n%s", err, out)
	}
}
