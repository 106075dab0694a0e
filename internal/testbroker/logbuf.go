package testbroker

import (
	"bytes"
	"sync"
)

// LogBuffer is a log sink safe for concurrent writes, for tests that check
// what a component logged (slog.NewTextHandler(&buf, nil)).
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
