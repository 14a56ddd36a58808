package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/apikeywallet/apiwallet/internal/client"
)

// clientCommands use a wallet over its HTTP API, from any machine that
// reaches it, with a login kept in the user's configuration directory.
var clientCommands = []*command{
	{name: "login", args: "[--url URL] [--email EMAIL]", summary: "log in and keep the login token",
		desc: "Logs in to the wallet and keeps the login token in the user's configuration directory " +
			"(apiwallet/config.json there, mode 0600; APIWALLET_CONFIG names another file). The password is read " +
			"from the terminal without echo, or as the first line of standard input when that is not a terminal. " +
			"Later commands use the login's URL unless --url or APIWALLET_URL names another wallet, to which the " +
			"token is never sent.",
		setup: loginCmd},
	{name: "logout", args: "[--url URL]", summary: "revoke the login and forget the token",
		desc:  "Revokes the user's login tokens at the wallet (the dashboard's sessions too) and removes the kept token.",
		setup: logoutCmd},
	{name: "keys add", args: "--service NAME [--tier free|paid] [--secret-file FILE] [flags]", summary: "store an upstream API key",
		desc: "Stores an upstream key in the wallet, encrypted. The secret is read from --secret-file, from the terminal " +
			"without echo, or from standard input; never from an argument, which other users see with ps. " +
			"Only the key's masked form is printed.",
		setup: keysAddCmd},
	{name: "keys list", args: "[--service NAME] [--tier free|paid] [--json]", summary: "list the workspace's keys, masked",
		setup: keysListCmd},
	{name: "keys rotate", args: "ID [--secret-file FILE]", summary: "replace a key's secret, keeping its ID and settings",
		desc: "Replaces the secret of key ID; its ID, settings, usage and audit trail stay. The new secret is read " +
			"like keys add's.",
		setup: keysRotateCmd},
	{name: "keys disable", args: "ID", summary: "stop routing calls to a key",
		desc:  "Disables key ID: the proxy no longer chooses it. The key stays stored; keys enable turns it on again.",
		setup: keysEnableCmd(false)},
	{name: "keys enable", args: "ID", summary: "route calls to a disabled key again",
		setup: keysEnableCmd(true)},
	{name: "tokens create", args: "--name NAME [--service NAME]... [--expires TIME] [--rate-limit N]", summary: "create a wallet access token for an app",
		desc: "Creates a wallet access token, which apps and SDKs send instead of the upstream key. The token is printed " +
			"once, alone on standard output (so TOKEN=$(apiwallet tokens create --name app) keeps it); the wallet " +
			"stores only its hash.",
		setup: tokensCreateCmd},
	{name: "tokens list", args: "[--json]", summary: "list the workspace's access tokens, masked", setup: tokensListCmd},
	{name: "tokens revoke", args: "ID", summary: "revoke an access token at once", setup: tokensRevokeCmd},
	{name: "usage", args: "[--from DATE] [--to DATE] [--group-by G] [--service NAME] [--json]", summary: "show calls, errors, latency, cost and savings",
		desc: "Shows the workspace's usage report as a table: one row per group and the totals. --json prints the " +
			"wallet's report unchanged. Without --from and --to the report covers this month so far.",
		setup: usageCmd},
	{name: "health", args: "[--url URL] [--json]", summary: "check that the wallet and its storage are up",
		desc:  "Reads the wallet's health report; no login is needed. Exits with status 1 when the wallet is not healthy.",
		setup: healthCmd},
}

// noArgs refuses arguments without echoing them: a pasted secret must not
// end up in an error message or a terminal's scrollback twice.
func noArgs(name string, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Sprintf("apiwallet %s takes no arguments (%d given)", name, len(args))}
	}
	return nil
}

func oneID(name string, args []string) (string, error) {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return "", usageError{fmt.Sprintf("apiwallet %s needs exactly one ID, the one keys list or tokens list shows", name)}
	}
	return args[0], nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func loginCmd(fs *flag.FlagSet) runFunc {
	cf := addClientFlags(fs)
	email := fs.String("email", "", "the `address` to log in as (asked on a terminal if not given)")
	return func(inv *invocation, args []string) error {
		if err := noArgs("login", args); err != nil {
			return err
		}
		s, err := cf.connect(inv, false)
		if err != nil {
			return err
		}
		if *email == "" {
			if _, ok := terminal(inv.stdin); !ok {
				return usageError{"apiwallet login: --email is required when standard input is not a terminal"}
			}
			fmt.Fprint(inv.stderr, "Email: ")
			line, err := readLine(inv.stdin)
			if err != nil {
				return err
			}
			*email = line
		}
		password, err := readSecret(inv.stdin, inv.stderr, "Password: ", "password")
		if err != nil {
			return err
		}
		// A fresh client: a stored token has no business in a login.
		c, err := client.New(s.url, "")
		if err != nil {
			return err
		}
		c.SetTimeout(*cf.timeout)
		ss, err := c.Login(inv.ctx, *email, password)
		if err != nil {
			return fmt.Errorf("login to %s failed: %w", s.url, err)
		}
		cfg := &clientConfig{URL: s.url, Email: ss.User.Email, Token: ss.Token, ExpiresAt: ss.ExpiresAt}
		if err := saveClientConfig(s.path, cfg); err != nil {
			return fmt.Errorf("logged in, but the token could not be kept: %w", err)
		}
		fmt.Fprintf(inv.stdout, "logged in to %s as %s until %s; the token is kept in %s\n",
			s.url, ss.User.Email, ss.ExpiresAt.UTC().Format(time.RFC3339), s.path)
		return nil
	}
}

// readLine reads one line of a terminal, with echo.
func readLine(r io.Reader) (string, error) {
	var sb strings.Builder
	b := make([]byte, 1)
	for sb.Len() < 1024 {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			sb.WriteByte(b[0])
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", err
		}
	}
	return strings.TrimSpace(sb.String()), nil
}

func logoutCmd(fs *flag.FlagSet) runFunc {
	cf := addClientFlags(fs)
	return func(inv *invocation, args []string) error {
		if err := noArgs("logout", args); err != nil {
			return err
		}
		s, err := cf.connect(inv, false)
		if err != nil {
			return err
		}
		if !s.loggedIn {
			// An expired token is still forgotten.
			if s.cfg.Token != "" && sameWallet(s.cfg.URL, s.url) {
				s.cfg.Token, s.cfg.ExpiresAt = "", time.Time{}
				if err := saveClientConfig(s.path, s.cfg); err != nil {
					return err
				}
			}
			fmt.Fprintf(inv.stdout, "not logged in to %s\n", s.url)
			return nil
		}
		// A token the wallet no longer accepts is as good as revoked.
		if err := s.c.Logout(inv.ctx); err != nil && client.StatusOf(err) != http.StatusUnauthorized {
			return fmt.Errorf("logout: %w", err)
		}
		if sameWallet(s.cfg.URL, s.url) && s.cfg.Token != "" {
			s.cfg.Token, s.cfg.ExpiresAt = "", time.Time{}
			if err := saveClientConfig(s.path, s.cfg); err != nil {
				return err
			}
		}
		fmt.Fprintf(inv.stdout, "logged out of %s\n", s.url)
		return nil
	}
}

// secretSource defines --secret-file; secrets in argv are refused by
// refuseSecretFlags before any flag is parsed.
func secretSource(fs *flag.FlagSet) *string {
	return fs.String("secret-file", "", "read the key's secret from `file` (default: the terminal, or standard input)")
}

func readKeySecret(inv *invocation, file, prompt string) (string, error) {
	if file != "" {
		return readSecretFile(file)
	}
	return readSecret(inv.stdin, inv.stderr, prompt, "secret")
}

func keysAddCmd(fs *flag.FlagSet) runFunc {
	cf := addClientFlags(fs)
	service := fs.String("service", "", "the `service` the key belongs to, as GET /services names it (stripe, openai, ...)")
	tier := fs.String("tier", "paid", "the key's `tier`: free (used first, while its quota lasts) or paid")
	label := fs.String("label", "", "a `label` to tell the key apart")
	desc := fs.String("description", "", "the key's `description`")
	keyType := fs.String("type", "", "the key's `type` (the seed's metadata.type, such as secret or publishable)")
	quota := fs.Int64("quota", 0, "the key's own monthly quota in `calls` (0: none)")
	priority := fs.Int("priority", 0, "routing `priority`: lower goes first among keys of a tier")
	disabled := fs.Bool("disabled", false, "store the key disabled")
	secretFile := secretSource(fs)
	asJSON := fs.Bool("json", false, "print the stored key (masked) as JSON")
	return func(inv *invocation, args []string) error {
		if err := noArgs("keys add", args); err != nil {
			return err
		}
		if *service == "" {
			return usageError{"apiwallet keys add: --service is required"}
		}
		s, err := cf.connect(inv, true)
		if err != nil {
			return err
		}
		secret, err := readKeySecret(inv, *secretFile, "Secret of the "+*service+" key: ")
		if err != nil {
			return err
		}
		in := client.KeyCreate{Secret: secret, Service: *service, Tier: *tier, Label: *label, Priority: *priority}
		if *desc != "" || *keyType != "" || *quota > 0 {
			in.Metadata = &client.KeyMetadata{Type: *keyType, Description: *desc}
			if *quota > 0 {
				in.Metadata.Quota = quota
			}
		}
		if *disabled {
			f := false
			in.Enabled = &f
		}
		k, err := s.c.CreateKey(inv.ctx, in)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(inv.stdout, k)
		}
		fmt.Fprintf(inv.stdout, "stored %s key %s (%s, %s)\n", k.Service, k.ID, k.Tier, k.MaskedKey)
		return nil
	}
}

func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func keysListCmd(fs *flag.FlagSet) runFunc {
	cf := addClientFlags(fs)
	service := fs.String("service", "", "only keys of this `service`")
	tier := fs.String("tier", "", "only keys of this `tier` (free or paid)")
	asJSON := fs.Bool("json", false, "print the keys as JSON")
	return func(inv *invocation, args []string) error {
		if err := noArgs("keys list", args); err != nil {
			return err
		}
		s, err := cf.connect(inv, true)
		if err != nil {
			return err
		}
		keys, err := s.c.ListKeys(inv.ctx, client.KeyFilter{Service: *service, Tier: *tier})
		if err != nil {
			return err
		}
		if *asJSON {
			if keys == nil {
				keys = []client.Key{}
			}
			return printJSON(inv.stdout, keys)
		}
		tw := tabwriter.NewWriter(inv.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSERVICE\tTIER\tLABEL\tKEY\tSTATUS\tENABLED\tLAST USED")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%t\t%s\n", k.ID, k.Service, k.Tier, orDash(k.Label), k.MaskedKey,
				k.Status, k.Enabled, when(k.LastUsedAt))
		}
		return tw.Flush()
	}
}

func keysRotateCmd(fs *flag.FlagSet) runFunc {
	cf := addClientFlags(fs)
	secretFile := secretSource(fs)
	return func(inv *invocation, args []string) error {
		id, err := oneID("keys rotate", args)
		if err != nil {
			return err
		}
		s, err := cf.connect(inv, true)
		if err != nil {
			return err
		}
		secret, err := readKeySecret(inv, *secretFile, "New secret of key "+id+": ")
		if err != nil {
			return err
		}
		k, err := s.c.RotateKey(inv.ctx, id, secret)
		if err != nil {
			return err
		}
		fmt.Fprintf(inv.stdout, "rotated %s key %s to version %d (%s)\n", k.Service, k.ID, k.Version, k.MaskedKey)
		return nil
	}
}

func keysEnableCmd(enabled bool) func(fs *flag.FlagSet) runFunc {
	name, done := "keys disable", "disabled"
	if enabled {
		name, done = "keys enable", "enabled"
	}
	return func(fs *flag.FlagSet) runFunc {
		cf := addClientFlags(fs)
		return func(inv *invocation, args []string) error {
			id, err := oneID(name, args)
			if err != nil {
				return err
			}
			s, err := cf.connect(inv, true)
			if err != nil {
				return err
			}
			k, err := s.c.SetKeyEnabled(inv.ctx, id, enabled)
			if err != nil {
				return err
			}
			fmt.Fprintf(inv.stdout, "%s %s key %s (%s)\n", done, k.Service, k.ID, k.MaskedKey)
			return nil
		}
	}
}

// listFlag is a flag that may be given several times, each value possibly
// a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// parseExpiry reads --expires: an RFC 3339 time, a date, or a duration
// from now such as 720h.
func parseExpiry(s string, now time.Time) (string, error) {
	if s == "" {
		return "", nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC().Format(time.RFC3339), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC().Format(time.RFC3339), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d).UTC().Truncate(time.Second).Format(time.RFC3339), nil
	}
	return "", usageError{fmt.Sprintf("--expires %q: want a time (2030-01-31T12:00:00Z), a date (2030-01-31) or a duration (720h)", s)}
}

func tokensCreateCmd(fs *flag.FlagSet) runFunc {
	cf := addClientFlags(fs)
	name := fs.String("name", "", "the token's `name`, usually the app that uses it")
	var services listFlag
	fs.Var(&services, "service", "a `service` the token may call; repeat or separate with commas (default: all)")
	expires := fs.String("expires", "", "when the token expires: an RFC 3339 `time`, a date, or a duration from now such as 720h")
	rate := fs.Int("rate-limit", 0, "the token's own limit in `calls` per minute (0: the plan's)")
	asJSON := fs.Bool("json", false, "print the created token, its secret included, as JSON")
	return func(inv *invocation, args []string) error {
		if err := noArgs("tokens create", args); err != nil {
			return err
		}
		if *name == "" {
			return usageError{"apiwallet tokens create: --name is required"}
		}
		exp, err := parseExpiry(*expires, time.Now())
		if err != nil {
			return err
		}
		s, err := cf.connect(inv, true)
		if err != nil {
			return err
		}
		in := client.TokenCreate{Name: *name, Services: services, ExpiresAt: exp}
		if *rate > 0 {
			in.RateLimitPerMinute = rate
		}
		t, err := s.c.CreateToken(inv.ctx, in)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(inv.stdout, t)
		}
		scope := "every service"
		if len(t.Services) > 0 {
			scope = strings.Join(t.Services, ", ")
		}
		fmt.Fprintf(inv.stderr, "created access token %s %q for %s; it is shown only now:\n", t.ID, t.Name, scope)
		fmt.Fprintln(inv.stdout, t.Secret)
		return nil
	}
}

func tokensListCmd(fs *flag.FlagSet) runFunc {
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print the tokens as JSON")
	return func(inv *invocation, args []string) error {
		if err := noArgs("tokens list", args); err != nil {
			return err
		}
		s, err := cf.connect(inv, true)
		if err != nil {
			return err
		}
		toks, err := s.c.ListTokens(inv.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			if toks == nil {
				toks = []client.Token{}
			}
			return printJSON(inv.stdout, toks)
		}
		tw := tabwriter.NewWriter(inv.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tTOKEN\tSERVICES\tSTATUS\tEXPIRES\tLAST USED")
		for _, t := range toks {
			svc := "all"
			if len(t.Services) > 0 {
				svc = strings.Join(t.Services, ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Masked, svc, t.Status, when(t.ExpiresAt), when(t.LastUsedAt))
		}
		return tw.Flush()
	}
}

func tokensRevokeCmd(fs *flag.FlagSet) runFunc {
	cf := addClientFlags(fs)
	return func(inv *invocation, args []string) error {
		id, err := oneID("tokens revoke", args)
		if err != nil {
			return err
		}
		s, err := cf.connect(inv, true)
		if err != nil {
			return err
		}
		if err := s.c.RevokeToken(inv.ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(inv.stdout, "revoked access token %s\n", id)
		return nil
	}
}

// dollars shows micro-dollars with at least two decimals and up to six.
func dollars(micros int64) string {
	sign := ""
	if micros < 0 {
		sign, micros = "-", -micros
	}
	frac := strings.TrimRight(fmt.Sprintf("%06d", micros%1_000_000), "0")
	for len(frac) < 2 {
		frac += "0"
	}
	return fmt.Sprintf("%s$%d.%s", sign, micros/1_000_000, frac)
}

func ms(x float64) string { return strconv.FormatFloat(x, 'f', 0, 64) + "ms" }

func usageCmd(fs *flag.FlagSet) runFunc {
	cf := addClientFlags(fs)
	from := fs.String("from", "", "start of the report: an RFC 3339 `time` or a date YYYY-MM-DD (default: the start of this month)")
	to := fs.String("to", "", "end of the report: an RFC 3339 `time` or a date, which counts whole (default: now)")
	groupBy := fs.String("group-by", "service", "one row per `group`: service, key, tier, token, member, endpoint, day or hour")
	service := fs.String("service", "", "only calls to this `service`")
	tz := fs.String("tz", "", "the IANA time `zone` of dates and of day and hour rows (default: the workspace's)")
	asJSON := fs.Bool("json", false, "print the wallet's report as JSON, unchanged")
	return func(inv *invocation, args []string) error {
		if err := noArgs("usage", args); err != nil {
			return err
		}
		s, err := cf.connect(inv, true)
		if err != nil {
			return err
		}
		q := client.UsageQuery{From: *from, To: *to, GroupBy: *groupBy, Service: *service, TZ: *tz}
		if *asJSON {
			raw, err := s.c.UsageJSON(inv.ctx, q)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(inv.stdout, "%s\n", raw)
			return err
		}
		u, err := s.c.Usage(inv.ctx, q)
		if err != nil {
			return err
		}
		fmt.Fprintf(inv.stdout, "usage from %s to %s (%s), by %s\n\n", u.From.Format(time.RFC3339), u.To.Format(time.RFC3339), orDash(u.TZ), u.GroupBy)
		// Numbers align right; the group names are padded to one width
		// so that they read left-aligned.
		width := len("TOTAL")
		for _, r := range u.Rows {
			width = max(width, utf8.RuneCountInString(rowName(r)))
		}
		pad := func(s string) string { return s + strings.Repeat(" ", width-utf8.RuneCountInString(s)) }
		tw := tabwriter.NewWriter(inv.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, pad("GROUP")+"\tCALLS\tOK\tCLIENT ERR\tSERVER ERR\tNETWORK\tREFUSED\t429\tP50\tP95\tCOST\tSAVED\t")
		row := func(name string, f client.Figures) {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", pad(name), f.Calls, f.Successes, f.Errors.Client,
				f.Errors.Server, f.Errors.Network, f.Errors.Refused, f.RateLimited, ms(f.LatencyMs.P50), ms(f.LatencyMs.P95),
				dollars(f.CostMicros), dollars(f.SavingsMicros))
		}
		for _, r := range u.Rows {
			row(rowName(r), r.Figures)
		}
		row("TOTAL", u.Totals)
		return tw.Flush()
	}
}

// rowName is a usage row's label, else its group.
func rowName(r client.UsageRow) string {
	if r.Label != "" {
		return r.Label
	}
	return orDash(r.Group)
}

func healthCmd(fs *flag.FlagSet) runFunc {
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print the health report as JSON")
	return func(inv *invocation, args []string) error {
		if err := noArgs("health", args); err != nil {
			return err
		}
		s, err := cf.connect(inv, false)
		if err != nil {
			return err
		}
		h, err := s.c.Health(inv.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			if err := printJSON(inv.stdout, h); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(inv.stdout, "%s: %s (database %s, redis %s)\n", s.url, h.Status, h.Services.Database, h.Services.Redis)
		}
		if h.Status != "healthy" {
			return fmt.Errorf("the wallet at %s is %s", s.url, h.Status)
		}
		return nil
	}
}
