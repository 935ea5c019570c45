package config_test

import (
	"testing"

	"github.com/darktower/devstack/internal/localstack"
	"github.com/darktower/devstack/internal/secret"
	"github.com/darktower/devstack/verifier/config"
)

// The configuration `make up` writes for local mode names the files only
// local mode can read (issue 14 items 6 and 7): Redis's log, for an AOF
// truncated at start, and every data directory, for free space.
func TestLocalModeReadsLogAndDataDirectories(t *testing.T) {
	l := localstack.Layout{StateDir: "/home/dev/dark tower/.state", Base: 17000}
	topo := l.Topology(localstack.Secrets{}, secret.New("pg"), secret.New("rd"))
	env := map[string]string{"REDIS_PASSWORD": "rd", "DATABASE_URL": "postgres://u:pg@127.0.0.1:17001/d", "VERIFIER_CLIENT_SECRET": "s"}
	cfg, err := config.Parse("verifier.yaml", []byte(l.VerifierConfig(topo)), config.Options{
		Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	for what, got := range map[string][2]string{
		"redis.log_file":      {cfg.Redis.LogFile, l.LogFile("redis")},
		"redis.data_dir":      {cfg.Redis.DataDir, l.Path("redis")},
		"postgres.data_dir":   {cfg.Postgres.DataDir, l.Path("postgres", "data")},
		"prometheus.data_dir": {cfg.Prometheus.DataDir, l.Path("prometheus")},
	} {
		if got[0] != got[1] {
			t.Errorf("%s = %q, want %q", what, got[0], got[1])
		}
	}
}
