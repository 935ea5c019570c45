package testsupport

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Condition is what Eventually polls: an error (nil once it holds), a bool,
// or a bool with the last value seen, for the failure message.
type Condition interface {
	func() error | func() bool | func() (bool, string)
}

// Eventually polls cond until it holds, failing the test with cond's last
// error or value when timeout passes first.
func Eventually[C Condition](t testing.TB, timeout time.Duration, what string, cond C) {
	t.Helper()
	check := func() error {
		switch c := any(cond).(type) {
		case func() error:
			return c()
		case func() bool:
			if !c() {
				return errors.New("still false")
			}
		case func() (bool, string):
			if ok, last := c(); !ok {
				return fmt.Errorf("last: %s", last)
			}
		}
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Buffer is a bytes.Buffer safe for concurrent writers and readers, for
// capturing logs that goroutines write while a test reads them.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
