package pause_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/node/images/pause"
)

// TestMain lets the test binary act as the pause process: with PAUSE_CHILD set it
// starts a short-lived child of its own, then runs pause.Run.
func TestMain(m *testing.M) {
	if os.Getenv("PAUSE_CHILD") == "1" {
		child := exec.Command("/bin/sh", "-c", "exit 0")
		if err := child.Start(); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString(strconv.Itoa(child.Process.Pid) + "\n")
		if s := pause.Run(context.Background(), os.Stderr); s == syscall.SIGTERM || s == syscall.SIGINT {
			os.Exit(0)
		}
		os.Exit(4)
	}
	os.Exit(m.Run())
}

func TestRunReapsAndExitsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "PAUSE_CHILD=1")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 32)
		n, err := out.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		child := strings.TrimSpace(string(buf[:n]))
		// The child exits at once; pause must reap it (no zombie left in /proc).
		deadline := time.Now().Add(5 * time.Second)
		for {
			st, err := os.ReadFile("/proc/" + child + "/stat")
			if err != nil {
				break // reaped
			}
			if time.Now().After(deadline) {
				t.Fatalf("child %s not reaped: %s", child, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%v: pause exited with %v, want 0", sig, err)
			}
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%v: pause still running after 5s", sig)
		}
	}
}
