package mounts

import (
	"os"
	"slices"
	"testing"
)

func TestUnescape(t *testing.T) {
	if got := unescape(`/tmp/a\040b\134c`); got != `/tmp/a b\c` {
		t.Fatalf("unescape = %q", got)
	}
}

// /proc is mounted on every Linux machine these tests run on.
func TestUnderFindsProc(t *testing.T) {
	got, err := Under("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, "/proc") {
		t.Fatalf("Under(/proc) = %v, want /proc among them", got)
	}
	dir := t.TempDir()
	if got, err := Under(dir); err != nil || len(got) != 0 {
		t.Fatalf("Under(%s) = %v, %v; want nothing", dir, got, err)
	}
	_ = os.Remove(dir)
}
