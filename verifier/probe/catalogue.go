package probe

import (
	"slices"
	"time"

	"github.com/darktower/devstack/verifier/config"
)

// Spec declares one check, in its probe's file. Whatever lists checks
// (Checks, plan, the valid timeouts keys, the e2e tests) follows specs, and
// catalogue_test.go holds the README's table to it, so a check is added in
// one place (README "Adding a check").
type Spec struct {
	ID string
	// Needs are the checks it waits for. One that the configuration does
	// not build is not waited for: a prerequisite left out of the file.
	Needs []string
	// Enabled says whether the configuration asks for the check.
	Enabled func(*config.Config) bool
	// Targets is what it probes, for plan and messages.
	Targets func(*config.Config) []string
	// Vars fills placeholders of next commands; nil for none.
	Vars func(*config.Config) map[string]string
	// Services are the DNS names it connects to; in cluster mode the
	// evidence says what they resolved to. Nil for none (pod IPs).
	Services func(*config.Config) []string
	Probe    Func
}

// specs is every check in dependency order: each needs only earlier ones.
// A new probe file adds its list here.
var specs = slices.Concat(redisChecks, postgresChecks, acChecks, gcChecks, mcChecks,
	prometheusChecks, workloadChecks, migrationChecks, netpolChecks)

// IDs are the check ids in dependency order: what timeouts may name.
func IDs() []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.ID
	}
	return out
}

// Check is one entry of the plan: an id, the checks it needs, its probe and
// the per-attempt timeout.
type Check struct {
	ID      string
	Deps    []string
	Probe   Func
	Timeout time.Duration
	Targets []string          // what it probes, for plan and messages
	Vars    map[string]string // placeholders for next commands
}

// Checks builds the checks the configuration asks for, in dependency order.
func Checks(cfg *config.Config) []Check {
	built := map[string]bool{}
	for _, s := range specs {
		built[s.ID] = s.Enabled(cfg)
	}
	var out []Check
	for _, s := range specs {
		if !built[s.ID] {
			continue
		}
		var deps []string
		for _, n := range s.Needs {
			if built[n] {
				deps = append(deps, n)
			}
		}
		c := Check{ID: s.ID, Deps: deps, Probe: s.Probe, Timeout: cfg.TimeoutFor(s.ID), Targets: s.Targets(cfg)}
		if s.Vars != nil {
			c.Vars = s.Vars(cfg)
		}
		if cfg.Mode == "cluster" && s.Services != nil {
			c.Probe = withDNS(c.Probe, s.Services(cfg))
		}
		out = append(out, c)
	}
	return out
}

// withPath adds the local files and directories a check also reads (those
// set) to its targets.
func withPath(targets []string, paths ...string) []string {
	out := slices.Clip(targets)
	for _, p := range paths {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}
