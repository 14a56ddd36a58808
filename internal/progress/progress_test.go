package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// The rendered line fills exactly the given width, grows with the work,
// and never overflows when more is done than announced.
func TestRender(t *testing.T) {
	cases := []struct {
		done, total int64
		width       int
		want        string
	}{
		{0, 4, 40, "keys [>                ]   0% 0/4     0s"},
		{2, 4, 40, "keys [========>        ]  50% 2/4     0s"},
		{4, 4, 40, "keys [=================] 100% 4/4     0s"},
		{9, 4, 40, "keys [=================] 100% 4/4     0s"},
		{1, 4, 12, "keys  25% 1/4     0s"}, // too narrow for a bar
		{3, 10, 40, "keys [====>          ]  30%  3/10     0s"},
		{7, 0, 40, "keys 7 0s"}, // no total: a count
	}
	for _, c := range cases {
		got := Render("keys", c.done, c.total, c.width, 0)
		if got != c.want {
			t.Errorf("Render(%d/%d, %d) = %q, want %q", c.done, c.total, c.width, got, c.want)
		}
		if c.total > 0 && c.width >= 40 && len(got) != c.width {
			t.Errorf("%q is %d columns, want %d", got, len(got), c.width)
		}
	}
	if got := Render("x", 1, 2, 80, 1234*time.Millisecond); !strings.HasSuffix(got, " 50% 1/2   1.2s") || len(got) != 80 {
		t.Errorf("Render at 80 columns = %q (%d)", got, len(got))
	}
}

// A drawing bar redraws once per whole percent, not once per step, and
// ends its line on Finish.
func TestBarDraws(t *testing.T) {
	var buf bytes.Buffer
	b := NewWriter(&buf, 60, 1000, "seeding")
	for range 1000 {
		b.Add(1)
	}
	b.Finish()
	b.Finish()
	out := buf.String()
	if n := strings.Count(out, "\r"); n != 102 { // 0%..100% and the final draw
		t.Errorf("%d redraws, want 102", n)
	}
	last := out[strings.LastIndex(out, "\r"):]
	if !strings.Contains(last, "] 100% 1000/1000 ") || !strings.HasSuffix(last, "\x1b[K\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("output does not end with the full bar and one newline: %q", last)
	}
	if b.Done() != 1000 {
		t.Errorf("Done = %d", b.Done())
	}
}

// Where the output is not a terminal (a file, a pipe, a buffer) the bar is
// silent: logs and scripts see only the command's own summary.
func TestBarSilentOffTerminal(t *testing.T) {
	f, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	for _, b := range []*Bar{New(f, 10, "x"), New(&buf, 10, "x")} {
		for range 10 {
			b.Add(1)
		}
		b.Finish()
		if b.Done() != 10 {
			t.Errorf("Done = %d", b.Done())
		}
	}
	if fi, _ := f.Stat(); fi.Size() != 0 || buf.Len() != 0 {
		t.Errorf("a bar wrote %d bytes to a file and %d to a buffer", fi.Size(), buf.Len())
	}
	var nilBar *Bar
	nilBar.Add(1)
	nilBar.Finish()
	nilBar.Abandon()
}

// An abandoned bar ends its line so that the error after it is readable,
// and draws nothing more.
func TestBarAbandon(t *testing.T) {
	var buf bytes.Buffer
	b := NewWriter(&buf, 60, 10, "x")
	b.Add(3)
	b.Abandon()
	b.Add(3)
	b.Finish()
	if out := buf.String(); strings.Count(out, "\r") != 1 || !strings.HasSuffix(out, "\n") || strings.Contains(out, "60%") {
		t.Errorf("output %q", out)
	}
}
