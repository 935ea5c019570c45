package probe

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/darktower/devstack/verifier/config"
)

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

// kinds maps each check id to its probe, like a prober registry.
var kinds = map[string]Func{
	config.RedisReachable:    redisReachable,
	config.RedisAuth:         redisAuthEnforced,
	config.RedisPersistence:  redisPersistence,
	config.PostgresReachable: postgresReachable,
	config.PostgresSchema:    postgresSchema,
	config.PostgresStorage:   postgresStorage,
	config.ACJWKS:            acJWKS,
	config.ACToken:           acToken,
	config.GCHealth:          gcHealth,
	config.GCAuth:            gcAuthEnforced,
	config.GCRegistration:    gcRegistration,
	config.MCReady:           mcReady,
	config.MCWebTransport:    mcWebTransport,
	config.PromReady:         prometheusReady,
	config.PromTargets:       prometheusTargets,
	config.PromStorage:       prometheusStorage,
	config.K8sWorkloads:      kubernetesWorkloads,
	config.K8sMigration:      kubernetesMigration,
	config.K8sNetworkPolicy:  kubernetesNetworkPolicy,
}

// Checks builds the checks the configuration asks for, in dependency order.
func Checks(cfg *config.Config) []Check {
	var out []Check
	add := func(id string, deps []string, targets []string, vars map[string]string) {
		out = append(out, Check{ID: id, Deps: deps, Probe: kinds[id], Timeout: cfg.TimeoutFor(id), Targets: targets, Vars: vars})
	}
	if r := cfg.Redis; r != nil {
		v := map[string]string{"ref": r.Password.ShellRef()}
		tg := []string{r.Address}
		add(config.RedisReachable, nil, tg, v)
		add(config.RedisAuth, []string{config.RedisReachable}, tg, v)
		add(config.RedisPersistence, []string{config.RedisReachable}, withPath(tg, r.LogFile, r.DataDir), v)
	}
	if p := cfg.Postgres; p != nil {
		v := map[string]string{"ref": p.URL.ShellRef()}
		tg := []string{"postgres (" + p.URL.Ref() + ")"}
		add(config.PostgresReachable, nil, tg, v)
		add(config.PostgresSchema, []string{config.PostgresReachable}, tg, v)
		add(config.PostgresStorage, []string{config.PostgresReachable}, withPath(tg, p.DataDir), v)
	}
	if a := cfg.AC; a != nil {
		v := map[string]string{"ref": a.ClientSecret.ShellRef()}
		tg := config.RedactURLs(a.URLs)
		add(config.ACJWKS, nil, tg, v)
		deps := []string{config.ACJWKS}
		if cfg.Postgres != nil {
			// AC reads its clients from Postgres: with Postgres down,
			// postgres.reachable says so and the token is blocked.
			deps = append(deps, config.PostgresReachable)
		}
		add(config.ACToken, deps, tg[:1], v)
	}
	if g := cfg.GC; g != nil {
		add(config.GCHealth, nil, g.GRPCAddresses, nil)
		add(config.GCAuth, []string{config.GCHealth}, g.GRPCAddresses, nil)
		if cfg.AC != nil && cfg.MC != nil {
			// The registry of a GC that answers without a token proves
			// nothing (anyone could have registered), so it waits for auth.
			deps := []string{config.GCAuth, config.ACToken}
			if cfg.Redis != nil {
				// An MC reports HEALTHY only with Redis: with Redis down,
				// redis.reachable says so and the MC checks are blocked.
				deps = append(deps, config.RedisReachable)
			}
			if cfg.Postgres != nil {
				deps = append(deps, config.PostgresReachable) // the registry lives there
			}
			add(config.GCRegistration, deps, g.GRPCAddresses, nil)
		}
	}
	if m := cfg.MC; m != nil && cfg.GC != nil && cfg.AC != nil {
		deps := []string{config.GCRegistration}
		if cfg.Redis != nil {
			// MC is ready only with Redis reachable: if Redis is down that
			// check explains it and mc.ready is blocked, not a second failure.
			deps = append(deps, config.RedisReachable)
		}
		targets := config.RedactURLs(m.HealthURLs)
		if len(targets) == 0 {
			targets = []string{"health port " + strconv.Itoa(m.HealthPort) + " of each registered MC"}
		}
		add(config.MCReady, deps, targets, nil)
		add(config.MCWebTransport, []string{config.GCRegistration}, []string{"each registered MC's WebTransport endpoint"}, nil)
	}
	if p := cfg.Prometheus; p != nil {
		tg := []string{config.RedactURL(p.URL)}
		add(config.PromReady, nil, tg, nil)
		add(config.PromTargets, []string{config.PromReady}, tg, nil)
		add(config.PromStorage, []string{config.PromReady}, withPath(tg, p.DataDir), nil)
	}
	if k := cfg.Kubernetes; k != nil {
		// Independent of each other and of the service checks: each reads
		// the API for itself, and a workload that is not ready is explained
		// by kubernetes.workloads while the service checks say what it breaks.
		v := map[string]string{"ns": k.Namespace}
		if ws := expectedWorkloads(k); len(ws) > 0 {
			tg := make([]string, len(ws))
			for i, w := range ws {
				tg[i] = w.String()
			}
			add(config.K8sWorkloads, nil, tg, v)
		}
		if k.MigrationJob != "" {
			add(config.K8sMigration, nil, []string{k.Namespace + "/job/" + k.MigrationJob}, v)
		}
		if np := k.NetworkPolicy; np != nil {
			var tg []string
			for _, pp := range np.Allow {
				tg = append(tg, "allow "+pp.Pods+" :"+strconv.Itoa(pp.Port))
			}
			for _, pp := range np.Deny {
				tg = append(tg, "deny "+pp.Pods+" :"+strconv.Itoa(pp.Port))
			}
			add(config.K8sNetworkPolicy, nil, tg, v)
		}
	}
	if cfg.Mode == "cluster" {
		for i := range out {
			out[i].Probe = withDNS(out[i].Probe, serviceNames(cfg, out[i].ID))
		}
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

// serviceNames are the DNS names a check's probe connects to. MC health
// listeners and WebTransport endpoints are the pod addresses MCs register,
// one per replica, so they have none.
func serviceNames(cfg *config.Config, id string) []string {
	switch {
	case strings.HasPrefix(id, "redis."):
		return dnsNames(cfg.Redis.Address)
	case strings.HasPrefix(id, "postgres."):
		return dnsNames(cfg.Postgres.URL.Value.Reveal())
	case strings.HasPrefix(id, "ac."):
		return dnsNames(cfg.AC.URLs...)
	case strings.HasPrefix(id, "gc."):
		return dnsNames(cfg.GC.GRPCAddresses...)
	case strings.HasPrefix(id, "prometheus."):
		return dnsNames(cfg.Prometheus.URL)
	case id == config.MCReady:
		return dnsNames(cfg.MC.HealthURLs...)
	}
	return nil
}
