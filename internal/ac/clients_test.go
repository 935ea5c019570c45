package ac

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/darktower/devstack/internal/config"
)

const goodClients = `clients:
  - client_id: meeting-controller
    client_secret: "mc-secret"
    service_type: meeting-controller
    scopes: [service.write.gc]
  - client_id: verifier
    client_secret: "verifier-secret"
    service_type: verifier
    scopes:
      - service.read.gc
`

func TestParseClientsGood(t *testing.T) {
	cs, err := ParseClients([]byte(goodClients))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].ID != "meeting-controller" || cs[0].Secret.Reveal() != "mc-secret" ||
		cs[0].ServiceType != "meeting-controller" || strings.Join(cs[0].Scopes, ",") != "service.write.gc" ||
		cs[1].ID != "verifier" || strings.Join(cs[1].Scopes, ",") != "service.read.gc" {
		t.Fatalf("parsed %+v", cs)
	}
}

func TestParseClientsUnknownKeyNamesLine(t *testing.T) {
	doc := strings.Replace(goodClients, "    service_type: verifier\n", "    service_type: verifier\n    client_secrte: typo\n", 1)
	_, err := ParseClients([]byte(doc))
	if err == nil {
		t.Fatal("unknown key accepted")
	}
	// The typo sits on line 9.
	if err.Error() != "line 9: unknown key client_secrte" {
		t.Fatalf("error %q does not name line 9 and the key", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error spans lines: %q", err)
	}
	top := "clients: []\nextra: 1\n"
	if _, err := ParseClients([]byte(top)); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("unknown top-level key: %v", err)
	}
}

func TestParseClientsRefusesBadEntries(t *testing.T) {
	entry := func(id, sec, st, scopes string) string {
		return "clients:\n  - client_id: ok\n    client_secret: x\n    service_type: verifier\n    scopes: [service.read.gc]\n" +
			"  - client_id: " + id + "\n    client_secret: " + sec + "\n    service_type: " + st + "\n    scopes: " + scopes + "\n"
	}
	cases := []struct{ name, doc, want string }{
		{"empty file", "", "empty file"},
		{"no clients", "clients: []\n", "no clients"},
		{"empty secret", entry("a", `""`, "verifier", "[service.read.gc]"), "client_secret is empty"},
		{"bad client_id", entry(`"bad id!"`, "x", "verifier", "[service.read.gc]"), "client_id"},
		{"unknown service_type", entry("a", "x", "web", "[service.read.gc]"), "service_type"},
		{"unknown scope", entry("a", "x", "verifier", "[admin]"), `scope "admin"`},
		{"no scopes", entry("a", "x", "verifier", "[]"), "scopes is empty"},
		{"duplicate", entry("ok", "x", "verifier", "[service.read.gc]"), "appears twice"},
		{"secret too long", entry("a", strings.Repeat("x", 73), "verifier", "[service.read.gc]"), "72 bytes"},
		{"scopes not a list", entry("a", "x", "verifier", "hunter2-looks-like-a-secret"), "value not shown"},
		{"syntax", "clients:\n  - client_id: [\n", "line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseClients([]byte(c.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q quotes a value", err)
			}
		})
	}
	// Validation errors point at the entry's line (the second item starts on line 6).
	_, err := ParseClients([]byte(entry("a", "x", "web", "[service.read.gc]")))
	if err == nil || !strings.HasPrefix(err.Error(), "line 6:") {
		t.Fatalf("error %v does not start with line 6", err)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "clients.yaml")
	if err := os.WriteFile(file, []byte(goodClients), 0o600); err != nil {
		t.Fatal(err)
	}
	seed := base64.StdEncoding.EncodeToString(make([]byte, 32))
	base := func() map[string]string {
		return map[string]string{
			"DATABASE_URL":    "postgres://u:pw@127.0.0.1:5432/dark_tower",
			"AC_SIGNING_KEY":  seed,
			"AC_CLIENTS_FILE": file,
		}
	}
	cfg, err := LoadConfig(config.FromMap(base()))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BindAddress != "0.0.0.0:8082" || cfg.TokenTTL.Seconds() != 3600 || len(cfg.Clients) != 2 || len(cfg.SigningSeed.Reveal()) != 32 {
		t.Fatalf("config %+v", cfg)
	}
	cases := []struct{ key, value, want string }{
		{"DATABASE_URL", "", "DATABASE_URL"},
		{"DATABASE_URL", "mysql://u:pw@h:1/x", "DATABASE_URL"},
		{"AC_SIGNING_KEY", "", "AC_SIGNING_KEY"},
		{"AC_SIGNING_KEY", "%%%not-base64%%%", "AC_SIGNING_KEY"},
		{"AC_SIGNING_KEY", base64.StdEncoding.EncodeToString(make([]byte, 16)), "AC_SIGNING_KEY"},
		{"AC_SIGNING_KEY", base64.StdEncoding.EncodeToString(make([]byte, 64)), "AC_SIGNING_KEY"},
		{"AC_CLIENTS_FILE", "", "AC_CLIENTS_FILE"},
		{"AC_CLIENTS_FILE", filepath.Join(dir, "missing.yaml"), "AC_CLIENTS_FILE"},
		{"AC_TOKEN_TTL_SECONDS", "soon", "AC_TOKEN_TTL_SECONDS"},
		{"BIND_ADDRESS", "8082", "BIND_ADDRESS"},
	}
	for _, c := range cases {
		env := base()
		if c.value == "" {
			delete(env, c.key)
		} else {
			env[c.key] = c.value
		}
		_, err := LoadConfig(config.FromMap(env))
		if err == nil || !config.IsConfigError(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%q: error %v, want a config error naming %s", c.key, c.value, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("%s=%q: error %q shows the password", c.key, c.value, err)
		}
	}
}
