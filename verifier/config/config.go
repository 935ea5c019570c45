// Package config loads the verifier's YAML configuration: environment
// expansion, JSON Schema validation with line numbers, strict decoding and
// credential references resolved into secret.Value.
package config

import (
	"time"

	"github.com/darktower/devstack/internal/secret"
)

// Defaults for settings the file leaves out.
const (
	DefaultDeadline           = 60 * time.Second
	DefaultTimeout            = 5 * time.Second
	DefaultBackoffInitial     = 200 * time.Millisecond
	DefaultBackoffMax         = 5 * time.Second
	DefaultHeartbeatThreshold = 30 * time.Second
	DefaultNamespace          = "dark-tower"
	DefaultDialTimeout        = 2 * time.Second
	// MinFreeBytes is the free space a data directory must keep: one
	// Postgres WAL segment (16 MiB) and room for Prometheus's head chunks
	// and Redis's AOF to grow.
	MinFreeBytes = 64 << 20
)

// Config is one verifier configuration file.
type Config struct {
	Version     int                 `yaml:"version"`
	Mode        string              `yaml:"mode"`
	Deadline    Duration            `yaml:"deadline"`
	Concurrency int                 `yaml:"concurrency"`
	Timeouts    map[string]Duration `yaml:"timeouts"`
	Backoff     Backoff             `yaml:"backoff"`
	Redis       *Redis              `yaml:"redis"`
	Postgres    *Postgres           `yaml:"postgres"`
	AC          *AC                 `yaml:"ac"`
	GC          *GC                 `yaml:"gc"`
	MC          *MC                 `yaml:"mc"`
	Prometheus  *Prometheus         `yaml:"prometheus"`
	Kubernetes  *Kubernetes         `yaml:"kubernetes"`

	// Path is the file the configuration came from.
	Path string `yaml:"-"`
}

// Backoff bounds the delay between attempts of one check.
type Backoff struct {
	Initial Duration `yaml:"initial"`
	Max     Duration `yaml:"max"`
}

// Redis is the datastore MC keeps meeting state in.
type Redis struct {
	Address  string     `yaml:"address"`
	Password Credential `yaml:"password"`
	// LogFile is Redis's log, read for what it did at start (a truncated
	// AOF); DataDir is where its AOF lives, for free space. Local mode only.
	LogFile string `yaml:"log_file"`
	DataDir string `yaml:"data_dir"`
}

// Postgres is the registry database.
type Postgres struct {
	URL Credential `yaml:"url"`
	// DataDir is the data directory, for free space. Local mode only.
	DataDir string `yaml:"data_dir"`
}

// AC is the token service and the verifier's own client in it.
type AC struct {
	URLs         []string   `yaml:"urls"`
	ClientID     string     `yaml:"client_id"`
	ClientSecret Credential `yaml:"client_secret"`
}

// GC lists every global controller's gRPC listener.
type GC struct {
	GRPCAddresses []string `yaml:"grpc_addresses"`
}

// MC says which meeting controllers must be registered and how to reach them.
type MC struct {
	ExpectedCount      int      `yaml:"expected_count"`
	ExpectedIDs        []string `yaml:"expected_ids"`
	Region             string   `yaml:"region"`
	HeartbeatThreshold Duration `yaml:"heartbeat_threshold"`
	HealthURLs         []string `yaml:"health_urls"`
	HealthPort         int      `yaml:"health_port"`
}

// Prometheus is the metrics server and the jobs it must be scraping.
type Prometheus struct {
	URL  string `yaml:"url"`
	Jobs []Job  `yaml:"jobs"`
	// DataDir is the TSDB directory, for free space. Local mode only.
	DataDir string `yaml:"data_dir"`
}

// Job is a scrape job that must have at least MinTargets targets up.
type Job struct {
	Name       string `yaml:"name"`
	MinTargets int    `yaml:"min_targets"`
}

// Kubernetes is the cluster the stack runs in (mode cluster): the workloads
// that must be ready, the migration Job, and the NetworkPolicy probes.
type Kubernetes struct {
	// Kubeconfig and Context reach the API from the host; without them the
	// verifier uses its pod's ServiceAccount (rest.InClusterConfig).
	Kubeconfig    string               `yaml:"kubeconfig"`
	Context       string               `yaml:"context"`
	Namespace     string               `yaml:"namespace"`
	Workloads     map[string]Workloads `yaml:"workloads"`
	MigrationJob  string               `yaml:"migration_job"`
	NetworkPolicy *NetworkPolicy       `yaml:"network_policy"`
}

// Workloads are the controllers of one namespace that must be ready.
type Workloads struct {
	Deployments  []string `yaml:"deployments"`
	StatefulSets []string `yaml:"statefulsets"`
	DaemonSets   []string `yaml:"daemonsets"`
}

// NetworkPolicy lists ports the verifier's pod must reach (allow) and ports
// it must not (deny), each on the pods a label selector picks.
type NetworkPolicy struct {
	DialTimeout Duration  `yaml:"dial_timeout"`
	Allow       []PodPort `yaml:"allow"`
	Deny        []PodPort `yaml:"deny"`
}

// PodPort is a TCP port of the pods Pods selects, served by Container (which
// must be ready, so that the port is known to listen).
type PodPort struct {
	Pods      string `yaml:"pods"`
	Container string `yaml:"container"`
	Port      int    `yaml:"port"`
}

// Dial is how long a connection attempt may take.
func (n *NetworkPolicy) Dial() time.Duration {
	if n.DialTimeout > 0 {
		return n.DialTimeout.D()
	}
	return DefaultDialTimeout
}

// Credential is a reference to a secret: an environment variable or a file.
// Resolve fills Value; the reference itself is safe to print.
type Credential struct {
	Env   string `yaml:"env"`
	File  string `yaml:"file"`
	Value secret.Value
}

// Ref names where the secret comes from, for messages and next commands.
func (c Credential) Ref() string {
	if c.Env != "" {
		return "$" + c.Env
	}
	return "file " + c.File
}

// TimeoutFor is the per-attempt timeout of check id.
func (c *Config) TimeoutFor(id string) time.Duration {
	if d, ok := c.Timeouts[id]; ok && d > 0 {
		return d.D()
	}
	if d, ok := c.Timeouts["default"]; ok && d > 0 {
		return d.D()
	}
	return DefaultTimeout
}

// Threshold is the oldest acceptable MC heartbeat age.
func (m *MC) Threshold() time.Duration {
	if m.HeartbeatThreshold > 0 {
		return m.HeartbeatThreshold.D()
	}
	return DefaultHeartbeatThreshold
}

// MinTargetsOrDefault is at least one.
func (j Job) MinTargetsOrDefault() int { return max(j.MinTargets, 1) }

// Duration is a time.Duration written as a Go duration string ("5s").
type Duration time.Duration

// D converts to time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ShellRef is how a shell command reads the secret: "$NAME" or "$(cat PATH)".
func (c Credential) ShellRef() string {
	if c.Env != "" {
		return "$" + c.Env
	}
	return "$(cat " + c.File + ")"
}
