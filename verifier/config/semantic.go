package config

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/darktower/devstack/internal/secret"
)

// semantic checks what the schema cannot express: how sections depend on
// each other and which names must be unique.
func (l *loader) semantic(cfg *Config, doc *yaml.Node) {
	line := func(path ...string) int {
		k, v := nodeAt(doc, path)
		if k != nil {
			return k.Line
		}
		if v != nil {
			return v.Line
		}
		return 0
	}
	for id := range cfg.Timeouts {
		if ids := l.opt.CheckIDs; ids != nil && id != "default" && !slices.Contains(ids, id) {
			l.add(line("timeouts", id), "timeouts: unknown check id %q; expected 'default' or one of %v", id, ids)
		}
	}
	if cfg.Backoff.Initial > 0 && cfg.Backoff.Max > 0 && cfg.Backoff.Max < cfg.Backoff.Initial {
		l.add(line("backoff", "max"), "backoff.max (%v) is shorter than backoff.initial (%v)", cfg.Backoff.Max.D(), cfg.Backoff.Initial.D())
	}
	if m := cfg.MC; m != nil {
		if cfg.GC == nil || cfg.AC == nil {
			l.add(line("mc"), "mc: needs the gc section (the registry lists the MCs) and the ac section (the verifier's token for it)")
		}
		if len(m.ExpectedIDs) > 0 && len(m.ExpectedIDs) != m.ExpectedCount {
			l.add(line("mc", "expected_ids"), "mc.expected_ids lists %d ids but mc.expected_count is %d", len(m.ExpectedIDs), m.ExpectedCount)
		}
		if len(m.HealthURLs) == 0 && m.HealthPort == 0 {
			l.add(line("mc"), "mc: set health_urls (each MC's health listener) or health_port (derived from the registry's hosts)")
		}
	}
	if k := cfg.Kubernetes; k != nil {
		if cfg.Mode != "cluster" {
			l.add(line("kubernetes"), "kubernetes: the cluster checks need 'mode: cluster' (got %q)", cfg.Mode)
		}
		if len(k.Workloads) == 0 && k.MigrationJob == "" && k.NetworkPolicy == nil {
			l.add(line("kubernetes"), "kubernetes: set workloads, migration_job or network_policy; otherwise no check uses the section")
		}
		if np := k.NetworkPolicy; np != nil {
			if k.Kubeconfig != "" {
				// From the host a dropped connection proves nothing about the
				// pod network; the deny path must start in the verifier's pod.
				l.add(line("kubernetes", "network_policy"), "kubernetes.network_policy: runs only inside the cluster (the verifier's pod dials the pods); remove it or kubernetes.kubeconfig")
			}
			if len(np.Allow) == 0 || len(np.Deny) == 0 {
				l.add(line("kubernetes", "network_policy"), "kubernetes.network_policy: needs at least one allow port (so an outage is not taken for enforcement) and one deny port")
			}
		}
	}
	if cfg.Mode == "cluster" {
		// The verifier's pod cannot see another pod's files.
		for _, f := range cfg.localFiles() {
			l.add(line(f[0], f[1]), "%s.%s: the verifier reads it from this machine's files, so it needs 'mode: local'", f[0], f[1])
		}
	}
	if p := cfg.Prometheus; p != nil {
		seen := map[string]bool{}
		for i, j := range p.Jobs {
			if seen[j.Name] {
				l.add(line("prometheus", "jobs", strconv.Itoa(i), "name"), "prometheus.jobs: job %q is listed twice", j.Name)
			}
			seen[j.Name] = true
		}
	}
}

// Secrets returns every resolved secret, plus the password inside a secret
// URL, so output can be scrubbed of them whatever a library puts in an error.
func (c *Config) Secrets() []secret.Value {
	var out []secret.Value
	add := func(v secret.Value) {
		if !v.Empty() {
			out = append(out, v)
		}
	}
	if c.Redis != nil {
		add(c.Redis.Password.Value)
	}
	if c.Postgres != nil {
		add(c.Postgres.URL.Value)
		if u, err := url.Parse(c.Postgres.URL.Value.Reveal()); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok {
				add(secret.New(pw))
				add(secret.New(url.QueryEscape(pw)))
			}
		}
	}
	if c.AC != nil {
		add(c.AC.ClientSecret.Value)
	}
	for _, u := range c.plainURLs() {
		for _, v := range userinfo(u) {
			add(secret.New(v))
		}
	}
	return out
}

// plainURLs are the URLs written in the file itself (not credentials),
// which may still carry user:password@.
func (c *Config) plainURLs() []string {
	var out []string
	if c.AC != nil {
		out = append(out, c.AC.URLs...)
	}
	if c.MC != nil {
		out = append(out, c.MC.HealthURLs...)
	}
	if c.Prometheus != nil {
		out = append(out, c.Prometheus.URL)
	}
	return out
}

// userinfo returns the user:password of a URL in every form output may
// show it: raw, decoded and escaped.
func userinfo(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return nil
	}
	out := []string{u.User.String(), u.User.Username(), url.QueryEscape(u.User.Username())}
	if pw, ok := u.User.Password(); ok {
		out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw))
	}
	return out
}

// RedactURL drops a URL's user:password@ for display (plan, targets, next
// commands); the probes still use the URL as written.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i, j := strings.Index(raw, "://"), strings.LastIndex(raw, "@"); i >= 0 && j > i {
			return raw[:i+3] + "REDACTED@" + raw[j+1:]
		}
		return raw
	}
	if u.User == nil {
		return raw
	}
	u.User = url.User("REDACTED")
	return u.String()
}

// RedactURLs is RedactURL over a list.
func RedactURLs(raw []string) []string {
	out := make([]string, len(raw))
	for i, r := range raw {
		out[i] = RedactURL(r)
	}
	return out
}

// localFiles are the file and directory keys set in the file (section, key):
// signals the verifier reads from this machine's files in local mode.
func (c *Config) localFiles() [][2]string {
	var out [][2]string
	set := func(section, key, v string) {
		if v != "" {
			out = append(out, [2]string{section, key})
		}
	}
	if r := c.Redis; r != nil {
		set("redis", "log_file", r.LogFile)
		set("redis", "data_dir", r.DataDir)
	}
	if p := c.Postgres; p != nil {
		set("postgres", "data_dir", p.DataDir)
	}
	if p := c.Prometheus; p != nil {
		set("prometheus", "data_dir", p.DataDir)
	}
	return out
}
