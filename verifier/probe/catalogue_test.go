package probe

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/darktower/devstack/verifier/config"
)

// Everything that lists the checks agrees with specs (issue 12): adding a
// check is its Spec, its class rows and one README line, and this test
// names whichever of those was forgotten.
func TestCatalogueIsOneList(t *testing.T) {
	ids := IDs()
	if len(ids) < 19 {
		t.Fatalf("only %d specs; the list is broken", len(ids))
	}
	// The schema's pattern for timeouts keys.
	idRe := regexp.MustCompile(`^[a-z]+\.[a-z-]+$`)
	seen := map[string]bool{}
	for _, s := range specs {
		if !idRe.MatchString(s.ID) || seen[s.ID] {
			t.Errorf("spec %q: id repeated or not section.name", s.ID)
		}
		if s.Enabled == nil || s.Targets == nil || s.Probe == nil {
			t.Errorf("spec %s lacks Enabled, Targets or Probe", s.ID)
		}
		for _, n := range s.Needs {
			// Checks drops a need it does not build, so a typo here
			// would silently drop a dependency.
			if !seen[n] {
				t.Errorf("spec %s needs %q, which is not a check declared before it", s.ID, n)
			}
		}
		seen[s.ID] = true
	}

	t.Run("the cluster example builds every check, in order", func(t *testing.T) {
		cfg := parse(t, "../config/examples/cluster.yaml", nil)
		var got []string
		for _, c := range Checks(cfg) {
			got = append(got, c.ID)
		}
		if !slices.Equal(got, ids) {
			t.Errorf("checks %v\nspecs  %v", got, ids)
		}
	})

	t.Run("README table", func(t *testing.T) {
		rows := readmeChecks(t)
		var got []string
		for _, r := range rows {
			got = append(got, r[0])
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("verifier/README.md's check table lists\n%v\nspecs are\n%v", got, ids)
		}
		for i, s := range specs {
			if want := strings.Join(s.Needs, ", "); rows[i][1] != want {
				t.Errorf("README: %s needs %q, spec %q", s.ID, rows[i][1], want)
			}
		}
	})

	t.Run("timeouts keys", func(t *testing.T) {
		src := "version: 1\ntimeouts:\n  default: 1s\n"
		for _, id := range ids {
			src += "  " + id + ": 2s\n"
		}
		cfg := parse(t, "", []byte(src))
		for _, id := range ids {
			if cfg.TimeoutFor(id).String() != "2s" {
				t.Errorf("timeouts.%s not applied", id)
			}
		}
		for _, bad := range []string{"redis.reachabel", "kubernetes.workload"} {
			_, err := config.Parse("v.yaml", []byte("version: 1\ntimeouts:\n  "+bad+": 1s\n"), config.Options{CheckIDs: IDs()})
			if err == nil || !strings.Contains(err.Error(), "unknown check id") {
				t.Errorf("timeouts.%s: err = %v, want unknown check id", bad, err)
			}
		}
	})
}

func parse(t *testing.T, path string, data []byte) *config.Config {
	t.Helper()
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse("v.yaml", data, config.Options{Lookup: func(string) (string, bool) { return "", false }, CheckIDs: IDs()})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// readmeChecks returns the id and needs of each row of the README's table
// under "## Checks", which must be one table (no blank line inside).
func readmeChecks(t *testing.T) [][2]string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Checks\n")
	if !ok {
		t.Fatal(`README.md has no "## Checks" section`)
	}
	_, table, ok := strings.Cut(sec, "\n| id | needs |")
	if !ok {
		t.Fatal(`README.md's "## Checks" has no "| id | needs |" table`)
	}
	lines := strings.Split(table, "\n")[2:] // the header's end and |---|
	var rows [][2]string
	for _, l := range lines {
		if !strings.HasPrefix(l, "|") {
			break
		}
		cells := strings.Split(l, "|")
		if len(cells) < 4 {
			t.Fatalf("README row %q", l)
		}
		rows = append(rows, [2]string{strings.Trim(strings.TrimSpace(cells[1]), "`"), strings.TrimSpace(cells[2])})
	}
	return rows
}
