package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/apikeywallet/apiwallet"
)

// userCmd administers users from the operator's shell. It is the only way
// to make an ADMIN: registration never does.
func userCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) error {
	if len(args) == 0 || args[0] != "create" {
		return usageError{"usage: apiwallet user create --email E --name N [--admin]"}
	}
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	email, name, admin := userCreateFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	if *email == "" || *name == "" {
		return usageError{"apiwallet user create: --email and --name are required"}
	}
	password, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	a, err := openApp(ctx, stderr, environ)
	if err != nil {
		return err
	}
	defer a.close()
	role := apiwallet.RoleUser
	if *admin {
		role = apiwallet.RoleAdmin
	}
	u, err := a.authService().CreateUser(ctx, *email, password, *name, role)
	if err != nil {
		return describe(err)
	}
	fmt.Fprintf(stdout, "created %s %s (%s), personal workspace %s\n", u.Role, u.Email, u.ID, u.PersonalWorkspaceID)
	return nil
}

// userCreateFlags defines user create's flags, for the command and its help.
func userCreateFlags(fs *flag.FlagSet) (email, name *string, admin *bool) {
	email = fs.String("email", "", "the user's email address")
	name = fs.String("name", "", "the user's display name")
	admin = fs.Bool("admin", false, "give the user the global ADMIN role")
	return email, name, admin
}

// readPassword reads the password from a terminal without echo (asking
// twice), or as the first line of piped input.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Repeat password: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("the passwords differ")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}

// describe turns a validation error into one readable line per field.
func describe(err error) error {
	var e *apiwallet.Error
	if !errors.As(err, &e) {
		return err
	}
	msg := e.Message
	for _, f := range e.Fields {
		msg += fmt.Sprintf("\n  %s %s", f.Field, f.Detail)
	}
	return errors.New(msg)
}
