package httpserver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// A client that sends headers and then trickles its body must lose the
// connection once Read passes, not hold it for as long as it likes.
func TestSlowBodyIsCutOff(t *testing.T) {
	if DefaultTimeouts.Read <= 0 || DefaultTimeouts.Write <= 0 || DefaultTimeouts.Idle <= 0 || DefaultTimeouts.ReadHeader <= 0 {
		t.Fatalf("DefaultTimeouts leave a limit unset: %+v", DefaultTimeouts)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	})
	short := Timeouts{ReadHeader: 300 * time.Millisecond, Read: 500 * time.Millisecond, Write: time.Second, Idle: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, newServer(h, short, slog.New(slog.DiscardHandler)), ln, time.Second)
	}()
	defer func() { cancel(); <-done }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// One byte every 100 ms: each write is well inside any per-read limit,
	// so only a whole-request read timeout ends it.
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		if _, err := c.Write([]byte("x")); err != nil {
			return // the server closed the connection
		}
		time.Sleep(100 * time.Millisecond)
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [1]byte
		if _, err := c.Read(b[:]); err == io.EOF {
			return
		}
	}
	t.Fatalf("a body trickled for %v and the connection is still open; ReadTimeout is not enforced", time.Since(start))
}
