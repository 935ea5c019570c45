package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/internal/secret"
	"github.com/darktower/devstack/internal/testsupport"
)

func TestMain(m *testing.M) { testsupport.Main(m) }

type fixture struct {
	seed        []byte
	clientsFile string
	mcSecret    string
	vfSecret    string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	f := fixture{
		seed:     make([]byte, 32),
		mcSecret: "mc-" + testsupport.RandomToken(t, 16),
		vfSecret: "vf-" + testsupport.RandomToken(t, 16),
	}
	if _, err := rand.Read(f.seed); err != nil {
		t.Fatal(err)
	}
	f.clientsFile = filepath.Join(t.TempDir(), "clients.yaml")
	doc := fmt.Sprintf(`clients:
  - client_id: meeting-controller
    client_secret: %q
    service_type: meeting-controller
    scopes: [service.write.gc]
  - client_id: verifier
    client_secret: %q
    service_type: verifier
    scopes: [service.read.gc]
`, f.mcSecret, f.vfSecret)
	if err := os.WriteFile(f.clientsFile, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f fixture) env(dbURL, bind string) map[string]string {
	return map[string]string{
		"BIND_ADDRESS":         bind,
		"DATABASE_URL":         dbURL,
		"AC_SIGNING_KEY":       base64.StdEncoding.EncodeToString(f.seed),
		"AC_CLIENTS_FILE":      f.clientsFile,
		"AC_TOKEN_TTL_SECONDS": "3600",
	}
}

func TestConfigErrorsExitWithOneLine(t *testing.T) {
	bin := testsupport.Binary(t, "ac-service")
	f := newFixture(t)
	dbPassword := "pw-" + testsupport.RandomToken(t, 8)
	dbURL := "postgres://darktower:" + dbPassword + "@127.0.0.1:1/dark_tower"
	badYAML := filepath.Join(t.TempDir(), "typo.yaml")
	if err := os.WriteFile(badYAML, []byte("clients:\n  - client_id: a\n    client_secret: "+f.mcSecret+"\n    servce_type: verifier\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	cases := []struct {
		name, key, value string
		want             []string // substrings of the one line
	}{
		{"DATABASE_URL missing", "DATABASE_URL", "", []string{"DATABASE_URL", "required"}},
		{"DATABASE_URL not a URL", "DATABASE_URL", "darktower:" + dbPassword + "@nohost", []string{"DATABASE_URL", "postgres://"}},
		{"DATABASE_URL wrong scheme", "DATABASE_URL", "mysql://darktower:" + dbPassword + "@db:3306/x", []string{"DATABASE_URL", "scheme"}},
		{"AC_SIGNING_KEY missing", "AC_SIGNING_KEY", "", []string{"AC_SIGNING_KEY", "required"}},
		{"AC_SIGNING_KEY bad base64", "AC_SIGNING_KEY", "not*base64*" + hex.EncodeToString(f.seed), []string{"AC_SIGNING_KEY", "base64"}},
		{"AC_SIGNING_KEY short", "AC_SIGNING_KEY", b64(f.seed[:16]), []string{"AC_SIGNING_KEY", "32 bytes"}},
		{"AC_SIGNING_KEY long", "AC_SIGNING_KEY", b64(append(append([]byte{}, f.seed...), f.seed...)), []string{"AC_SIGNING_KEY", "exactly 32 bytes"}},
		{"AC_CLIENTS_FILE missing", "AC_CLIENTS_FILE", "", []string{"AC_CLIENTS_FILE", "required"}},
		{"AC_CLIENTS_FILE no such file", "AC_CLIENTS_FILE", filepath.Join(t.TempDir(), "absent.yaml"), []string{"AC_CLIENTS_FILE", "absent.yaml", "no such file"}},
		{"AC_CLIENTS_FILE unknown key", "AC_CLIENTS_FILE", badYAML, []string{"AC_CLIENTS_FILE", "line 4", "servce_type"}},
		{"BIND_ADDRESS malformed", "BIND_ADDRESS", "8082", []string{"BIND_ADDRESS", "host:port"}},
		{"AC_TOKEN_TTL_SECONDS malformed", "AC_TOKEN_TTL_SECONDS", "1h", []string{"AC_TOKEN_TTL_SECONDS", "integer"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := f.env(dbURL, "127.0.0.1:0")
			if c.value == "" {
				delete(env, c.key)
			} else {
				env[c.key] = c.value
			}
			p := testsupport.StartProcess(t, "ac-service", bin, env)
			code, err := p.Wait(20 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			out := p.Logs()
			if code != 2 {
				t.Fatalf("exit code %d, want 2; output:\n%s", code, out)
			}
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			if len(lines) != 1 {
				t.Fatalf("want exactly one line, got %d:\n%s", len(lines), out)
			}
			for _, w := range c.want {
				if !strings.Contains(lines[0], w) {
					t.Fatalf("line %q does not contain %q", lines[0], w)
				}
			}
			for _, s := range []string{dbPassword, f.mcSecret, b64(f.seed), hex.EncodeToString(f.seed)} {
				if strings.Contains(out, s) {
					t.Fatalf("output shows a secret: %q", out)
				}
			}
		})
	}
}

func TestServesTokensAndKeepsSecretsOutOfLogs(t *testing.T) {
	bin := testsupport.Binary(t, "ac-service")
	f := newFixture(t)
	pg := testsupport.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, _, err := database.Migrate(ctx, pg.URL(), 0); err != nil {
		t.Fatal(err)
	}

	// AC starts while Postgres is down: live, not ready, retrying.
	pg.Stop()
	addr := "127.0.0.1:" + strconv.Itoa(testsupport.FreePort(t))
	base := "http://" + addr
	p := testsupport.StartProcess(t, "ac-service", bin, f.env(pg.URL(), addr))
	if err := testsupport.WaitHTTP(base+"/health", 200, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := testsupport.WaitHTTP(base+"/ready", 503, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	pg.Start()
	if err := testsupport.WaitHTTP(base+"/ready", 200, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	// The shared helper (Basic auth) and the params style both get tokens.
	ts := auth.TokenSource(ctx, base, "meeting-controller", secret.New(f.mcSecret))
	tok, err := ts.Token()
	if err != nil {
		t.Fatalf("token via auth.TokenSource: %v", err)
	}
	jwks := get(t, base+auth.JWKSPath)
	v, err := auth.NewStaticValidator([]byte(jwks))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Validate(ctx, tok.AccessToken)
	if err != nil || claims.Subject != "meeting-controller" || claims.Scope != auth.ScopeWriteGC || claims.ServiceType != auth.ServiceMeetingController {
		t.Fatalf("claims %+v, %v", claims, err)
	}
	cc := clientcredentials.Config{ClientID: "verifier", ClientSecret: f.vfSecret, TokenURL: base + auth.TokenPath, AuthStyle: oauth2.AuthStyleInParams}
	if _, err := cc.Token(ctx); err != nil {
		t.Fatalf("token with client in params: %v", err)
	}

	// Failed requests: wrong secret both ways, JSON wrong secret, unknown client.
	cc.ClientSecret = "wrong-" + f.vfSecret
	if _, err := cc.Token(ctx); !isOAuth(err, 401, "invalid_client") {
		t.Fatalf("wrong secret: %v", err)
	}
	cc.AuthStyle = oauth2.AuthStyleInHeader
	if _, err := cc.Token(ctx); !isOAuth(err, 401, "invalid_client") {
		t.Fatalf("wrong secret in Basic: %v", err)
	}
	body := `{"grant_type":"client_credentials","client_id":"meeting-controller","client_secret":"x` + f.mcSecret + `"}`
	resp, err := http.Post(base+auth.TokenPath, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("JSON wrong secret: %d", resp.StatusCode)
	}
	resp, err = http.PostForm(base+auth.TokenPath, url.Values{"grant_type": {"client_credentials"}, "client_id": {"ghost"}, "client_secret": {f.mcSecret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("unknown client: %d", resp.StatusCode)
	}

	m := get(t, base+"/metrics")
	for _, want := range []string{`ac_token_issuance_total{status="success"} 2`, `ac_token_issuance_total{status="invalid_client"} 4`, "go_goroutines", "ac_http_requests_total"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	stop := func() {
		t.Helper()
		p.Signal(syscall.SIGTERM)
		code, err := p.Wait(15 * time.Second)
		if err != nil || code != 0 {
			t.Fatalf("after SIGTERM: code %d, %v", code, err)
		}
	}
	stop()

	// A restart re-syncs the same file and leaves every stored hash alone.
	before := storedHashes(t, pg)
	p.Start()
	if err := testsupport.WaitHTTP(base+"/ready", 200, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	stop()
	if after := storedHashes(t, pg); fmt.Sprint(after) != fmt.Sprint(before) || len(after) != 2 {
		t.Fatalf("restart changed stored hashes:\n%v\n%v", before, after)
	}
	if !strings.Contains(p.Logs(), `"unchanged":2`) {
		t.Fatalf("restart did not report 2 unchanged clients:\n%s", p.Logs())
	}

	logs := p.Logs()
	for name, s := range map[string]string{
		"meeting-controller secret": f.mcSecret, "verifier secret": f.vfSecret, "database password": pg.Password,
		"signing key (base64)": base64.StdEncoding.EncodeToString(f.seed), "signing key (hex)": hex.EncodeToString(f.seed),
		"signing key (raw)": string(f.seed),
	} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain the %s", name)
		}
	}
	var tokenLines, retryLines int
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if rec["service"] != "ac-service" {
			t.Fatalf("log line without service=ac-service: %s", l)
		}
		switch rec["msg"] {
		case "token request":
			tokenLines++
			if rec["client_id"] == nil || rec["outcome"] == nil {
				t.Fatalf("token log line lacks client_id or outcome: %s", l)
			}
			if rec["client_id"] == "ghost" && rec["reason"] != "unknown client" {
				t.Fatalf("unknown client logged as %s", l)
			}
		case "cannot sync service clients yet, retrying":
			retryLines++
			if !strings.Contains(l, pg.Addr()) {
				t.Fatalf("retry line does not name the database target: %s", l)
			}
		}
	}
	if tokenLines != 6 || retryLines == 0 {
		t.Fatalf("%d token lines (want 6), %d retry lines (want > 0):\n%s", tokenLines, retryLines, logs)
	}
}

func storedHashes(t *testing.T, pg *testsupport.Postgres) map[string]string {
	t.Helper()
	rows, err := pg.Conn(t).Query(context.Background(), "SELECT client_id, secret_hash FROM service_clients")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, h string
		if err := rows.Scan(&id, &h); err != nil {
			t.Fatal(err)
		}
		out[id] = h
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return string(b)
}

func isOAuth(err error, code int, errCode string) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.Response.StatusCode == code && re.ErrorCode == errCode
}
