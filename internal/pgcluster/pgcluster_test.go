package pgcluster_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/darktower/devstack/internal/pgcluster"
)

// TestParentsReachableOnlyFromInit: preparing a cluster changes no parent
// directory; initdb, run as the server user when we are root, adds search
// permission for others (o+x only) to the parents that lack it, and nothing
// when we are not root (issue 14 item 10).
func TestParentsReachableOnlyFromInit(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "private")
	if err := os.Mkdir(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	mode := func() os.FileMode {
		fi, err := os.Stat(parent)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	c, err := pgcluster.New(filepath.Join(parent, "pg"), 1, "darktower")
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(); m != 0o700 {
		t.Fatalf("New changed %s to %v", parent, m)
	}
	if err := c.Init("pw-not-logged", true); err != nil {
		t.Fatal(err)
	}
	want := os.FileMode(0o700)
	if os.Geteuid() == 0 {
		want = 0o701
	}
	if m := mode(); m != want {
		t.Errorf("after Init %s is %v, want %v", parent, m, want)
	}
	if !c.Initialized() {
		t.Error("Init ran but the cluster is not initialized")
	}
	if _, err := os.Stat(filepath.Join(c.Dir, ".pwfile")); !os.IsNotExist(err) {
		t.Errorf("the password file outlived Init: %v", err)
	}
}
