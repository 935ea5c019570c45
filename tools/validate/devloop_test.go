package validate

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// TestRebuildsOnlyWhatChanged: in `skaffold dev`, Skaffold rebuilds an image when its tag (the
// digest of the files its Dockerfile's context holds) changes. An edit in one package changes the
// tags of exactly the images whose binary imports that package (`go list -deps`), a Go test
// file's or a manifest's edit changes none, and go.sum's changes all. Tags come from Skaffold
// itself (`skaffold build --dry-run`), on a copy of the repository.
func TestRebuildsOnlyWhatChanged(t *testing.T) {
	repo := copyRepo(t)
	deps := map[string][]string{}
	for _, bin := range imageBinaries {
		cmd := exec.Command("go", "list", "-deps", "./cmd/"+bin)
		cmd.Dir = repo
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps ./cmd/%s: %v", bin, err)
		}
		deps[bin] = strings.Fields(string(out))
	}
	importers := func(pkg string) []string {
		var out []string
		for _, bin := range imageBinaries {
			if contains(deps[bin], "github.com/darktower/devstack/"+pkg) {
				out = append(out, bin)
			}
		}
		return out
	}
	goFile := func(pkg string) string {
		files, _ := filepath.Glob(filepath.Join(repo, pkg, "*.go"))
		for _, f := range files {
			if !strings.HasSuffix(f, "_test.go") {
				rel, _ := filepath.Rel(repo, f)
				return rel
			}
		}
		t.Fatalf("no Go file in %s", pkg)
		return ""
	}
	base := dryRunTags(t, repo)
	cases := []struct {
		file string
		want []string
	}{
		{"infra/services/global-controller/deployment.yaml", nil},
		{"README.md", nil},
		{"internal/gc/join_test.go", nil},
		{"go.sum", imageBinaries},
		{"internal/database/migrations/000099_devloop.up.sql", importers("internal/database/migrations")},
	}
	for _, pkg := range []string{"internal/gc", "internal/mc", "internal/ac", "verifier/probe", "cmd/db-migrate", "internal/auth", "internal/logging"} {
		cases = append(cases, struct {
			file string
			want []string
		}{goFile(pkg), importers(pkg)})
	}
	for _, c := range cases {
		path := filepath.Join(repo, c.file)
		orig, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(append([]byte{}, orig...), "\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
		tags := dryRunTags(t, repo)
		var changed []string
		for img, tag := range tags {
			if base[img] != tag {
				changed = append(changed, img)
			}
		}
		sort.Strings(changed)
		want := append([]string{}, c.want...)
		sort.Strings(want)
		if len(changed) != 0 || len(want) != 0 {
			if !reflect.DeepEqual(changed, want) {
				t.Errorf("an edit of %s rebuilds %v, want %v (the images whose binary imports it)", c.file, changed, want)
			}
		}
		t.Logf("%s -> %v", c.file, changed)
		if orig == nil {
			err = os.Remove(path)
		} else {
			err = os.WriteFile(path, orig, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// dryRunTags is image name -> the tag Skaffold's inputDigest policy gives it in repo (profile
// node, whose base images are build arguments: `scratch` keeps Skaffold from asking a registry).
func dryRunTags(t *testing.T, repo string) map[string]string {
	t.Helper()
	cmd := exec.Command(Tool(t, "skaffold"), "build", "-q", "--dry-run", "-p", "node")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "SKAFFOLD_UPDATE_CHECK=false", "NODE_GO_IMAGE=scratch", "NODE_RUNTIME_IMAGE=scratch")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skaffold build --dry-run: %v", err)
	}
	var res struct {
		Builds []struct{ ImageName, Tag string }
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("skaffold build --dry-run: %v: %s", err, out)
	}
	tags := map[string]string{}
	for _, b := range res.Builds {
		name := strings.TrimPrefix(b.ImageName, "dark-tower/")
		if strings.HasSuffix(b.Tag, ":latest") {
			t.Fatalf("skaffold could not compute a digest tag for %s: %s", b.ImageName, b.Tag)
		}
		tags[name] = b.Tag
	}
	if len(tags) != len(imageBinaries) {
		t.Fatalf("skaffold build --dry-run tags %v, want every image of %v", tags, imageBinaries)
	}
	return tags
}

// copyRepo copies the repository's files (tracked, and new ones not ignored) into a temporary
// directory.
func copyRepo(t *testing.T) string {
	t.Helper()
	root := RepoRoot(t)
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := t.TempDir()
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		fi, err := os.Lstat(src)
		if err != nil {
			continue // deleted in the working tree
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSymlink != 0 { // the images' <binary>.Dockerfile links
			target, err := os.Readlink(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(dst, rel)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, rel), b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}
