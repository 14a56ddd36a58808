package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// invocation is what a command runs with: Run's arguments.
type invocation struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string
}

// runFunc runs a command with the arguments left after its flags.
type runFunc func(inv *invocation, args []string) error

// command is one entry of the command table, the single source of
// `apiwallet help`, `apiwallet help CMD` and `apiwallet CMD --help`.
type command struct {
	name    string // with its subcommand: "keys add"
	args    string // the synopsis after the name, flags included
	summary string // one line for the overview
	desc    string // paragraphs for the command's own help
	server  bool   // operates the wallet itself, on its database
	// setup defines the command's flags on fs and returns what runs it.
	// It returns nil for the commands main.go's switch still dispatches
	// itself: their flags are defined here for the help only.
	setup func(fs *flag.FlagSet) runFunc
}

// commands is every command, in the order help lists them.
var commands []*command

func init() {
	commands = slices.Concat(serverCommands, clientCommands)
}

// serverCommands act on the wallet's own database and configuration, so
// they run where the wallet does, with its environment.
var serverCommands = []*command{
	{name: "serve", summary: "run the wallet", server: true,
		desc: "Runs the wallet on PORT (default 6789). Configuration comes from the environment: with none it keeps " +
			"SQLite and generated secrets under ./data; DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis.",
		setup: func(*flag.FlagSet) runFunc { return nil }},
	{name: "migrate", args: "[--status]", summary: "apply database migrations, or list them", server: true,
		desc: "Applies every pending migration to the database DATABASE_URL names (serve also does on start). " +
			"With --status it lists every migration, applied (with when) or pending, and changes nothing.",
		setup: func(fs *flag.FlagSet) runFunc {
			fs.Bool("status", false, "list the migrations, applied and pending, and change nothing")
			return nil
		}},
	{name: "backup", args: "FILE", summary: "consistent copy of the SQLite database, while serving", server: true,
		desc: "Copies the SQLite database to FILE (which must not exist, written with mode 0600) while serve goes on, " +
			"and checks the copy's integrity. Back up ENCRYPTION_KEY (or data/secrets.json) too: without it the copy's " +
			"keys cannot be decrypted. On PostgreSQL use pg_dump (docs/DEPLOYMENT.md).",
		setup: func(*flag.FlagSet) runFunc { return nil }},
	{name: "healthcheck", args: "[--url URL] [--timeout D]", summary: "exit 0 if /monitoring/health answers 200", server: true,
		desc: "Asks the wallet's /monitoring/health (by default on loopback at PORT, over https with TLS_CERT_FILE) " +
			"and exits 0 on a 200, 1 otherwise: the Docker image's HEALTHCHECK.",
		setup: func(fs *flag.FlagSet) runFunc {
			fs.String("url", "http://127.0.0.1:$PORT/monitoring/health", "the health `URL` to ask")
			fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
			return nil
		}},
	{name: "seed", args: "[--demo]", summary: "create the demo account", server: true,
		desc: "Creates a demo account with a random password, printed once. With --demo the account's workspace gets " +
			"keys, tokens and a month of generated usage, so the dashboard has something to show.",
		setup: func(fs *flag.FlagSet) runFunc {
			fs.Bool("demo", false, "fill the demo workspace with keys, tokens and a month of usage")
			return nil
		}},
	{name: "user create", args: "--email E --name N [--admin]", summary: "create a user (password on stdin)", server: true,
		desc: "Creates a user directly in the database, the only way to make an ADMIN. The password is asked twice on " +
			"a terminal, or read as the first line of standard input.",
		setup: func(fs *flag.FlagSet) runFunc { userCreateFlags(fs); return nil }},
	{name: "audit verify", summary: "check the audit log's hash chain", server: true,
		desc:  "Walks the whole audit hash chain and fails at the first event that does not match.",
		setup: func(*flag.FlagSet) runFunc { return nil }},
	{name: "rotate-master-key", args: "[--old-env NAME] [--new-env NAME]", summary: "rewrap every data key under a new root key", server: true,
		desc: "Rewraps every workspace data key from the root key in ENCRYPTION_KEY to the one in NEW_ENCRYPTION_KEY, " +
			"in one transaction. Both keys come from environment variables only, never from arguments, which other " +
			"users can read with ps. Restart every instance with the new key afterwards.",
		setup: func(fs *flag.FlagSet) runFunc { rotateFlags(fs); return nil }},
	{name: "version", summary: "print the version", server: true,
		setup: func(*flag.FlagSet) runFunc { return nil }},
	{name: "help", args: "[COMMAND]", summary: "describe the commands, or one command and its flags", server: true,
		setup: func(*flag.FlagSet) runFunc {
			return func(inv *invocation, args []string) error { return helpCmd(args, inv.stdout) }
		}},
}

// findCommand finds the command args name: the longest name matching
// their first words. rest is what follows the name.
func findCommand(args []string) (c *command, rest []string) {
	for _, cmd := range commands {
		words := strings.Fields(cmd.name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) && (c == nil || len(words) > len(strings.Fields(c.name))) {
			c, rest = cmd, args[len(words):]
		}
	}
	return c, rest
}

// group is the commands under a first word with subcommands ("keys").
func group(word string) []*command {
	var out []*command
	for _, c := range commands {
		if first, _, ok := strings.Cut(c.name, " "); ok && first == word {
			out = append(out, c)
		}
	}
	return out
}

func (c *command) flagSet(stderr io.Writer) (*flag.FlagSet, runFunc) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	run := c.setup(fs)
	fs.Usage = func() { c.printHelp(fs.Output(), fs) }
	return fs, run
}

// dispatch runs args if they name a command of the table that runs
// itself, or asks for its help. It reports false for the commands that
// main.go's switch dispatches, and for unknown ones.
func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) (bool, error) {
	if len(args) > 0 && len(group(args[0])) > 0 {
		if c, _ := findCommand(args); c == nil {
			return true, groupUsage(args, stdout)
		}
	}
	c, rest := findCommand(args)
	if c == nil {
		return false, nil
	}
	fs, run := c.flagSet(stderr)
	if run == nil {
		if !asksHelp(rest) {
			return false, nil
		}
		c.printHelp(stdout, fs)
		return true, nil
	}
	if err := refuseSecretFlags(c.name, rest); err != nil {
		return true, err
	}
	fs.SetOutput(io.Discard) // errors are returned; --help goes to stdout
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printHelp(stdout, fs)
			return true, nil
		}
		return true, usageError{fmt.Sprintf("apiwallet %s: %v\nusage: apiwallet %s", c.name, err, c.synopsis())}
	}
	return true, run(&invocation{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, environ: environ}, pos)
}

// parseInterspersed parses flags before and after the positional
// arguments (keys rotate ID --secret-file F), which the flag package
// alone stops at; everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		left := fs.Args()
		if n := len(args) - len(left); n > 0 && args[n-1] == "--" {
			return append(pos, left...), nil
		}
		if len(left) == 0 {
			return pos, nil
		}
		pos, args = append(pos, left[0]), left[1:]
	}
}

// groupUsage answers "apiwallet keys" or "apiwallet keys bogus".
func groupUsage(args []string, stdout io.Writer) error {
	if len(args) > 1 && asksHelp(args[1:2]) {
		listCommands(stdout, group(args[0]))
		return nil
	}
	var names []string
	for _, c := range group(args[0]) {
		names = append(names, c.name)
	}
	if len(args) == 1 {
		return usageError{fmt.Sprintf("apiwallet %s needs a subcommand: %s", args[0], strings.Join(names, ", "))}
	}
	return usageError{fmt.Sprintf("apiwallet: unknown command %q; %s has: %s", strings.Join(args[:2], " "), args[0], strings.Join(names, ", "))}
}

func asksHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

func (c *command) synopsis() string {
	if c.args == "" {
		return c.name
	}
	return c.name + " " + c.args
}

// printHelp prints the command's synopsis, description and flags.
func (c *command) printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: apiwallet %s\n\n", c.synopsis())
	fmt.Fprintln(w, wrap(c.summaryOrDesc(), 76))
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	fs.VisitAll(func(f *flag.Flag) {
		name, use := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" && f.DefValue != "0s" {
			use += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, strings.ReplaceAll(wrap(use, 70), "\n", "\n      "))
	})
}

func (c *command) summaryOrDesc() string {
	if c.desc != "" {
		return c.desc
	}
	s := c.summary
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

// wrap breaks s into lines of at most width columns at spaces.
func wrap(s string, width int) string {
	var lines []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			if line != "" && len(line)+1+len(w) > width {
				lines = append(lines, line)
				line = ""
			}
			if line != "" {
				line += " "
			}
			line += w
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// helpCmd is `apiwallet help [COMMAND]`.
func helpCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, overview())
		return nil
	}
	c, rest := findCommand(args)
	if c == nil || len(rest) > 0 {
		if g := group(args[0]); len(g) > 0 && len(args) == 1 {
			listCommands(stdout, g)
			return nil
		}
		return usageError{fmt.Sprintf("apiwallet help: unknown command %q", strings.Join(args, " "))}
	}
	fs, _ := c.flagSet(io.Discard)
	c.printHelp(stdout, fs)
	return nil
}

// overview lists every command: the text of `apiwallet help`.
func overview() string {
	var sb strings.Builder
	sb.WriteString("usage: apiwallet COMMAND [flags]\n\nRunning the wallet (where it runs, with its environment and database):\n")
	var srv, cli []*command
	for _, c := range commands {
		if c.server {
			srv = append(srv, c)
		} else {
			cli = append(cli, c)
		}
	}
	listCommands(&sb, srv)
	sb.WriteString("\nUsing a wallet over its HTTP API (APIWALLET_URL, default " + defaultURL + "):\n")
	listCommands(&sb, cli)
	sb.WriteString("\nRun 'apiwallet help COMMAND' or 'apiwallet COMMAND --help' for a command's flags.\n")
	return sb.String()
}

func listCommands(w io.Writer, cs []*command) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range cs {
		fmt.Fprintf(tw, "  apiwallet %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
}

// usageHint is what main prints after a usage error.
func usageHint() string {
	return "run 'apiwallet help' for every command, 'apiwallet help COMMAND' for one\n"
}

// refuseSecretFlags turns away a secret given as an argument, before flag
// parsing could echo it in an error: argv is visible to every user of the
// machine (ps, /proc) and stays in the shell's history.
func refuseSecretFlags(name string, args []string) error {
	for _, a := range args {
		if a == "--" {
			return nil
		}
		f, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && (f == "secret" || f == "key" || f == "password" || f == "token") {
			return usageError{fmt.Sprintf("apiwallet %s: secrets are never taken from the command line, where other users "+
				"see them with ps: use --secret-file FILE, standard input or the prompt", name)}
		}
	}
	return nil
}
