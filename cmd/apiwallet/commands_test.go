package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

func runOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), args, strings.NewReader(""), &out, io.Discard, nil)
	return out.String(), err
}

// Every command of the table, the single source of the help, answers
// `apiwallet CMD --help` and `apiwallet help CMD` with its synopsis, a
// description and every one of its flags, without running.
func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			fs, _ := c.flagSet(io.Discard)
			var flags []string
			fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f.Name) })
			args := strings.Fields(c.name)
			for _, form := range [][]string{append(args, "--help"), append([]string{"help"}, args...), append(args, "-h")} {
				out, err := runOut(t, form...)
				if err != nil {
					t.Fatalf("apiwallet %s: %v", strings.Join(form, " "), err)
				}
				if !strings.HasPrefix(out, "usage: apiwallet "+c.name) {
					t.Errorf("apiwallet %s does not start with the synopsis:\n%s", strings.Join(form, " "), out)
				}
				if len(strings.Split(strings.TrimSpace(out), "\n")) < 3 {
					t.Errorf("apiwallet %s has no description:\n%s", strings.Join(form, " "), out)
				}
				for _, f := range flags {
					if !strings.Contains(out, "--"+f) {
						t.Errorf("apiwallet %s does not mention --%s:\n%s", strings.Join(form, " "), f, out)
					}
				}
			}
			if c.summary == "" {
				t.Error("no summary for the overview")
			}
		})
	}
	out, err := runOut(t, "help")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands {
		if !strings.Contains(out, "apiwallet "+c.name+" ") {
			t.Errorf("apiwallet help does not list %s", c.name)
		}
	}
	if out2, _ := runOut(t, "--help"); out2 != out {
		t.Error("apiwallet --help differs from apiwallet help")
	}
	if _, err := runOut(t, "help", "nonsense"); !errors.As(err, new(usageError)) {
		t.Errorf("help for an unknown command: %v", err)
	}
}

// Every command main.go's switch dispatches has an entry in the command
// table, so that help describes it: a command added to the switch alone
// fails here.
func TestEveryDispatchedCommandIsInTheTable(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*case ((?:"[^"]+",?\s*)+):`).FindAllStringSubmatch(string(src), -1) {
		for _, name := range regexp.MustCompile(`"([^"]+)"`).FindAllStringSubmatch(m[1], -1) {
			if strings.HasPrefix(name[1], "-") {
				continue // --version, -h: aliases
			}
			if c, _ := findCommand([]string{name[1]}); c == nil && len(group(name[1])) == 0 {
				t.Errorf("main.go dispatches %q but the command table (commands.go) has no entry for it, so help does not describe it", name[1])
			}
		}
	}
}

// A command group without its subcommand, or with an unknown one, is a
// usage error naming the subcommands; with --help it lists them.
func TestCommandGroups(t *testing.T) {
	for _, args := range [][]string{{"keys"}, {"keys", "bogus"}, {"tokens"}, {"audit"}, {"user", "delete"}} {
		if _, err := runOut(t, args...); !errors.As(err, new(usageError)) {
			t.Errorf("apiwallet %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
	out, err := runOut(t, "tokens", "--help")
	if err != nil || !strings.Contains(out, "apiwallet tokens create") || !strings.Contains(out, "apiwallet tokens revoke") {
		t.Errorf("tokens --help: %v\n%s", err, out)
	}
}

// Secrets given as flags are refused before parsing, without echoing them,
// and a command that takes no arguments does not echo the ones it got.
func TestSecretsNeverFromArguments(t *testing.T) {
	const secret = "sk_live_shouldNotEcho123"
	for _, args := range [][]string{
		{"keys", "add", "--service", "stripe", "--secret", secret},
		{"keys", "add", "--service", "stripe", "-key=" + secret},
		{"keys", "rotate", "key_x", "--secret=" + secret},
		{"login", "--email", "a@example.com", "--password", secret},
		{"keys", "add", "--service", "stripe", secret},
	} {
		_, err := runOut(t, args...)
		if !errors.As(err, new(usageError)) || strings.Contains(err.Error(), secret) {
			t.Errorf("apiwallet %s: %v", strings.Join(args[:2], " "), err)
		}
	}
}

// Flags may follow positional arguments, as the synopses show them.
func TestInterspersedFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("secret-file", "", "")
	j := fs.Bool("json", false, "")
	pos, err := parseInterspersed(fs, []string{"key_1", "--secret-file", "f", "two", "--json", "--", "--not-a-flag"})
	if err != nil || *file != "f" || !*j || strings.Join(pos, " ") != "key_1 two --not-a-flag" {
		t.Fatalf("%v %q %v %q", err, *file, *j, pos)
	}
}
