package api

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// A database or Redis that cannot be reached is a 503 the client may retry;
// any other internal error stays a 500.
func TestDependencyDown(t *testing.T) {
	down := []error{
		fmt.Errorf("find keys: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}),
		fmt.Errorf("query: %w", io.ErrUnexpectedEOF),
		fmt.Errorf("query: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}),
		&pgconn.PgError{Code: "08006"},
		&pgconn.PgError{Code: "53300", Message: "too many connections"},
		syscall.ENOSPC,
	}
	for _, err := range down {
		if !dependencyDown(err) {
			t.Errorf("%v: not seen as a dependency down", err)
		}
	}
	up := []error{
		errors.New("template: bad"),
		&pgconn.PgError{Code: "23505"},
		&pgconn.PgError{Code: "42P01", Message: "relation does not exist"},
	}
	for _, err := range up {
		if dependencyDown(err) {
			t.Errorf("%v: seen as a dependency down", err)
		}
	}
}

func TestHasNULEscape(t *testing.T) {
	for in, want := range map[string]bool{
		`{"a":"x\u0000y"}`:     true,
		`{"a":"\\\u0000"}`:     true,  // an escaped backslash, then the escape
		`{"a":"\\u0000"}`:      false, // the text \u0000, not a NUL
		`{"a":"\\\\u0000"}`:    false,
		`{"a":"\u00001"}`:      true,
		`{"a":"u0000 \u0001"}`: false,
	} {
		if got := hasNULEscape([]byte(in)); got != want {
			t.Errorf("%s: %v, want %v", in, got, want)
		}
	}
}
