package testenv

import (
	"bytes"
	"strings"
	"sync"
)

// LogBuffer collects log output safely from several goroutines, for a
// test to read: slog.New(slog.NewTextHandler(buf, nil)).
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Count returns how many times s occurs in what was written.
func (b *LogBuffer) Count(s string) int {
	return strings.Count(b.String(), s)
}
