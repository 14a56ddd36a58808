// Command apiwallet is API Key Wallet: one binary that stores a company's
// third-party API keys encrypted and proxies its apps' calls to those APIs.
//
// Usage:
//
//	apiwallet serve                       run the wallet on PORT (default 6789)
//	apiwallet migrate [--status]          apply database migrations, or list them
//	apiwallet backup FILE                 copy the SQLite database, online
//	apiwallet healthcheck [--url URL]     exit 0 if /monitoring/health answers 200
//	apiwallet seed                        create a demo account
//	apiwallet user create --email E --name N [--admin]
//	                                      create a user; password on stdin
//	apiwallet audit verify                check the audit log's hash chain
//	apiwallet rotate-master-key [--old-env NAME] [--new-env NAME]
//	                                      rewrap every data key under a new root key
//	                                      read from NEW_ENCRYPTION_KEY
//	apiwallet version                     print the version
//	apiwallet login, keys, tokens, usage, health
//	                                      use a wallet over its HTTP API
//	apiwallet help [COMMAND]              describe every command and flag
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ())
	if err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintln(os.Stderr, err)
			fmt.Fprint(os.Stderr, usageHint())
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "apiwallet:", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Run runs one subcommand. It is main without the process: tests call it.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) error {
	if len(args) == 0 {
		return usageError{"apiwallet: no command given"}
	}
	// The command table runs the client commands and answers --help.
	if ok, err := dispatch(ctx, args, stdin, stdout, stderr, environ); ok {
		return err
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr, environ)
	case "migrate":
		return migrate(ctx, args[1:], stdout, stderr, environ)
	case "backup":
		return backupCmd(ctx, args[1:], stdout, stderr, environ)
	case "healthcheck":
		return healthcheck(ctx, args[1:], stdout, stderr, environ)
	case "seed":
		if len(args) > 1 && args[1] == "--demo" {
			return seedDemo(ctx, stdout, stderr, environ)
		}
		return seed(ctx, stdout, stderr, environ)
	case "audit":
		return auditCmd(ctx, args[1:], stdout, stderr, environ)
	case "rotate-master-key":
		return rotateMasterKey(ctx, args[1:], stdout, stderr, environ)
	case "user":
		return userCmd(ctx, args[1:], stdin, stdout, stderr, environ)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "apiwallet", version)
		return nil
	case "--help", "-h":
		return helpCmd(nil, stdout)
	default:
		return usageError{fmt.Sprintf("apiwallet: unknown command %q", args[0])}
	}
}
