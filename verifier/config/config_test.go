package config

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Every shipped example must satisfy the schema on its own (not only through
// Parse), so the schema file given to editors and CI agrees with the loader.
func TestExamplesValidateAgainstSchema(t *testing.T) {
	files, _ := filepath.Glob("examples/*.yaml")
	if len(files) < 2 {
		t.Fatalf("expected at least two examples, found %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// Defaults of ${VAR:-x} apply; credentials stay references.
		cfg, err := Parse(f, data, Options{Lookup: env(nil)})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if cfg.Redis == nil || cfg.MC == nil || cfg.Prometheus == nil {
			t.Fatalf("%s: expected every section", f)
		}
		l := &loader{file: f, opt: Options{Lookup: env(nil)}}
		var raw any
		if err := yaml.Unmarshal(l.expand(data), &raw); err != nil {
			t.Fatal(err)
		}
		b, _ := jsonMarshal(raw)
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := compiled.Validate(inst); err != nil {
			t.Errorf("%s does not validate against schema.json: %v", f, err)
		}
	}
}

func TestUnknownKeyNamesLine(t *testing.T) {
	src := "version: 1\nredis:\n  address: 127.0.0.1:6379\n  password: {env: P}\n  pasword: x\n"
	_, err := Parse("v.yaml", []byte(src), Options{Lookup: env(nil)})
	if err == nil || !strings.Contains(err.Error(), "v.yaml:5: unknown key \"pasword\"") {
		t.Fatalf("err = %v, want v.yaml:5 unknown key", err)
	}
}

func TestInlineCredentialRefused(t *testing.T) {
	src := "version: 1\npostgres:\n  url: postgres://u:hunter2@h/db\n"
	_, err := Parse("v.yaml", []byte(src), Options{Lookup: env(nil)})
	if err == nil || !strings.Contains(err.Error(), "v.yaml:3:") || !strings.Contains(err.Error(), "never inline") {
		t.Fatalf("err = %v, want line 3 never inline", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error echoes the inline secret: %v", err)
	}
}

func TestEnvExpansion(t *testing.T) {
	src := "version: 1\n# ${NOT_EXPANDED_IN_COMMENTS}\ndeadline: ${D:-7s}\nprometheus:\n  url: http://${HOST}:9090\n"
	cfg, err := Parse("v.yaml", []byte(src), Options{Lookup: env(map[string]string{"HOST": "prom.local"})})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Prometheus.URL != "http://prom.local:9090" || cfg.Deadline.D() != 7*time.Second {
		t.Fatalf("url %q deadline %v", cfg.Prometheus.URL, cfg.Deadline.D())
	}
	_, err = Parse("v.yaml", []byte(src), Options{Lookup: env(nil)})
	if err == nil || !strings.Contains(err.Error(), "v.yaml:5: ${HOST}: environment variable HOST is not set") {
		t.Fatalf("err = %v", err)
	}
}

func TestCredentialsResolve(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "secret")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := "version: 1\nredis:\n  address: h:1\n  password: {file: " + f + "}\npostgres:\n  url: {env: DBURL}\n"
	cfg, err := Parse("v.yaml", []byte(src), Options{ResolveSecrets: true, Lookup: env(map[string]string{"DBURL": "postgres://u:p%40ss@h/db"})})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Redis.Password.Value.Reveal() != "from-file" {
		t.Fatal("file credential not read")
	}
	secrets := cfg.Secrets()
	var got []string
	for _, s := range secrets {
		got = append(got, s.Reveal())
	}
	if !strings.Contains(strings.Join(got, " "), "p@ss") {
		t.Fatalf("Secrets() lacks the URL password: %v", len(got))
	}
	_, err = Parse("v.yaml", []byte(src), Options{ResolveSecrets: true, Lookup: env(nil)})
	if err == nil || !strings.Contains(err.Error(), "v.yaml:6: postgres.url: environment variable DBURL is not set") {
		t.Fatalf("err = %v", err)
	}
}

func TestSemanticProblems(t *testing.T) {
	cases := map[string]string{
		"version: 2\n": "/version",
		"version: 1\ntimeouts:\n  redis.reachabel: 1s\n":                                          "unknown check id",
		"version: 1\nmc:\n  expected_count: 1\n  health_port: 8081\n":                             "mc: needs the gc section",
		"version: 1\nbackoff:\n  initial: 2s\n  max: 1s\n":                                        "shorter than",
		"version: 1\ndeadline: soon\n":                                                            "/deadline",
		"version: 1\nprometheus:\n  url: http://p:9090\n  jobs: [{name: a}, {name: a}]\n":         "listed twice",
		"version: 1\ngc:\n  grpc_addresses: [nohostport]\n":                                       "/gc/grpc_addresses/0",
		"version: 1\nmode: cluster\nprometheus:\n  url: http://p:9090\n  data_dir: /prometheus\n": "v.yaml:5: prometheus.data_dir: the verifier reads it from this machine's files, so it needs 'mode: local'",
	}
	// The real ids are probe.IDs(); probe's catalogue test passes those.
	for src, want := range cases {
		_, err := Parse("v.yaml", []byte(src), Options{Lookup: env(nil), CheckIDs: []string{"redis.reachable"}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", src, err, want)
		}
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
