// Package progress draws a one-line progress bar for long operations
// (master-key rotation, demo seeding, backups, migrations) when their
// output is a terminal, and stays silent otherwise, so that logs and
// pipes get only the command's own summary.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Bar is a progress bar. Its methods are safe for concurrent use, and a
// nil *Bar does nothing, so callers need not check.
type Bar struct {
	mu      sync.Mutex
	w       io.Writer // nil: silent
	width   int       // of the whole line, in columns
	label   string
	total   int64 // 0: unknown, only a count is shown
	done    int64
	start   time.Time
	now     func() time.Time
	drawn   int64 // done at the last redraw
	drawnAt time.Time
	pct     int // percent at the last redraw; -1 before the first
	ended   bool
}

// New returns a bar for an operation of total steps (0 if not known in
// advance) labelled label. It draws only when w is a terminal; otherwise
// the bar counts silently.
func New(w io.Writer, total int64, label string) *Bar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return newBar(nil, 0, total, label)
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		width = 80
	}
	return newBar(w, width, total, label)
}

// NewWriter returns a bar that draws on w whatever it is, width columns
// wide: for callers that decided themselves that w shows progress.
func NewWriter(w io.Writer, width int, total int64, label string) *Bar {
	return newBar(w, width, total, label)
}

func newBar(w io.Writer, width int, total int64, label string) *Bar {
	if total < 0 {
		total = 0
	}
	return &Bar{w: w, width: width, label: label, total: total, now: time.Now, start: time.Now(), pct: -1}
}

// Add records n more steps done.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	if b.w == nil || b.ended {
		return
	}
	// Redraw when the whole percentage changes or, with no total, at most
	// ten times a second: a terminal redrawn per step slows the work.
	now := b.now()
	if b.total > 0 {
		if p := percent(b.done, b.total); p == b.pct {
			return
		}
	} else if now.Sub(b.drawnAt) < 100*time.Millisecond && b.drawn != 0 {
		return
	}
	b.draw(now)
}

// Done reports how many steps were recorded.
func (b *Bar) Done() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

// Finish draws the final state and ends the line. Later calls do nothing.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	b.ended = true
	if b.w == nil {
		return
	}
	b.draw(b.now())
	fmt.Fprint(b.w, "\n")
}

// Abandon ends the line without claiming completion: for an operation that
// failed, so that its error starts on a fresh line.
func (b *Bar) Abandon() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	b.ended = true
	if b.w != nil && b.drawn > 0 {
		fmt.Fprint(b.w, "\n")
	}
}

func (b *Bar) draw(now time.Time) {
	b.drawn, b.drawnAt = b.done, now
	b.pct = percent(b.done, b.total)
	// \r goes back to the line's start, \x1b[K clears what a longer
	// earlier line left.
	fmt.Fprint(b.w, "\r"+Render(b.label, b.done, b.total, b.width, now.Sub(b.start))+"\x1b[K")
}

func percent(done, total int64) int {
	if total <= 0 {
		return 0
	}
	if done >= total {
		return 100
	}
	return int(done * 100 / total)
}

// Render is the bar's line: the label, a bar filling width columns in
// all, the percentage and count, and the elapsed time, for example
//
//	rewrapping data keys [==========>         ]  52% 13/25   1.2s
//
// With no total it shows the label, the count and the time only.
func Render(label string, done, total int64, width int, elapsed time.Duration) string {
	el := elapsed.Round(100 * time.Millisecond).String()
	if total <= 0 {
		return fmt.Sprintf("%s %d %s", label, done, el)
	}
	if done > total {
		done = total
	}
	// Fixed widths keep the bar from jumping as the figures grow.
	digits := len(fmt.Sprint(total))
	tail := fmt.Sprintf(" %3d%% %*d/%d %6s", percent(done, total), digits, done, total, el)
	barWidth := width - len([]rune(label)) - len(tail) - 3 // space and brackets
	if barWidth < 10 {
		return label + tail
	}
	filled := int(int64(barWidth) * done / total)
	var sb strings.Builder
	sb.WriteString(label)
	sb.WriteString(" [")
	switch {
	case filled >= barWidth:
		sb.WriteString(strings.Repeat("=", barWidth))
	default:
		sb.WriteString(strings.Repeat("=", filled))
		sb.WriteString(">")
		sb.WriteString(strings.Repeat(" ", barWidth-filled-1))
	}
	sb.WriteString("]")
	sb.WriteString(tail)
	return sb.String()
}
