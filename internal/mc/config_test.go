package mc_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/config"
	"github.com/darktower/devstack/internal/logging"
	"github.com/darktower/devstack/internal/mc"
	"github.com/darktower/devstack/internal/testsupport"
)

// validEnv needs no running servers: the binary stops at configuration.
func validEnv() map[string]string {
	return map[string]string{
		"MC_REGION":                         "local",
		"GC_GRPC_URL":                       "http://global-controller.dark-tower:50051",
		"AC_INTERNAL_URL":                   "http://ac-service.dark-tower:8082",
		"AC_JWKS_URL":                       "http://ac-service.dark-tower:8082/.well-known/jwks.json",
		"MC_CLIENT_ID":                      "meeting-controller",
		"MC_CLIENT_SECRET":                  "client-secret-Zq81",
		"REDIS_URL":                         "redis://:redis-pass-Xk27@redis.dark-tower:6379",
		"MC_GRPC_ADVERTISE_ADDRESS":         "http://10.244.0.7:50052",
		"MC_WEBTRANSPORT_ADVERTISE_ADDRESS": "https://10.244.0.7:4433",
		"MC_BINDING_TOKEN_SECRET":           base64.StdEncoding.EncodeToString([]byte("binding-secret-of-32-bytes-Qw93!")),
	}
}

var configSecrets = []string{"client-secret-Zq81", "redis-pass-Xk27", "binding-secret", "YmluZGluZy1zZWNyZXQ"}

func TestLoadConfigDefaults(t *testing.T) {
	env := validEnv()
	env["MC_ID"] = "mc-0"
	cfg, err := mc.LoadConfig(config.FromMap(env))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ID != "mc-0" || cfg.GCTarget != "global-controller.dark-tower:50051" ||
		cfg.GRPCBind != "0.0.0.0:50052" || cfg.HealthBind != "0.0.0.0:8081" || cfg.WebTransportBind != "0.0.0.0:4433" ||
		cfg.MaxMeetings != 100 || cfg.MaxParticipants != 1000 || cfg.ShutdownGrace != 20*time.Second ||
		cfg.GRPCAdvertise != "http://10.244.0.7:50052" || cfg.WTAdvertise != "https://10.244.0.7:4433" ||
		cfg.ACInternalURL != "http://ac-service.dark-tower:8082" {
		t.Fatalf("config = %+v", cfg)
	}
	delete(env, "MC_ID")
	cfg, err = mc.LoadConfig(config.FromMap(env))
	if err != nil || cfg.ID == "" {
		t.Fatalf("MC_ID should default to the hostname: %q %v", cfg.ID, err)
	}
}

// Each missing or malformed variable stops the real binary with exit 2 and
// one line naming the variable; no secret value is echoed.
func TestProcessConfigErrors(t *testing.T) {
	bin := testsupport.Binary(t, "meeting-controller")
	type tc struct {
		name, variable string
		change         func(map[string]string)
	}
	var cases []tc
	for _, v := range []string{"MC_REGION", "GC_GRPC_URL", "AC_INTERNAL_URL", "AC_JWKS_URL", "MC_CLIENT_ID",
		"MC_CLIENT_SECRET", "REDIS_URL", "MC_GRPC_ADVERTISE_ADDRESS", "MC_WEBTRANSPORT_ADVERTISE_ADDRESS", "MC_BINDING_TOKEN_SECRET"} {
		cases = append(cases, tc{"missing " + v, v, func(e map[string]string) { delete(e, v) }})
	}
	set := func(k, v string) func(map[string]string) { return func(e map[string]string) { e[k] = v } }
	cases = append(cases,
		tc{"region too long", "MC_REGION", set("MC_REGION", strings.Repeat("r", 51))},
		tc{"id with space", "MC_ID", set("MC_ID", "mc 1")},
		tc{"gc url scheme", "GC_GRPC_URL", set("GC_GRPC_URL", "grpc://gc:50051")},
		tc{"gc url without port", "GC_GRPC_URL", set("GC_GRPC_URL", "http://gc")},
		tc{"ac url relative", "AC_INTERNAL_URL", set("AC_INTERNAL_URL", "ac-service:8082")},
		tc{"jwks url scheme", "AC_JWKS_URL", set("AC_JWKS_URL", "ftp://ac/jwks.json")},
		tc{"redis url scheme", "REDIS_URL", set("REDIS_URL", "http://:redis-pass-Xk27@redis:6379")},
		tc{"redis url query", "REDIS_URL", set("REDIS_URL", "redis://:redis-pass-Xk27@redis:6379/?bogus=1")},
		tc{"binding secret short", "MC_BINDING_TOKEN_SECRET", set("MC_BINDING_TOKEN_SECRET", base64.StdEncoding.EncodeToString([]byte("binding-secret-short")))},
		tc{"binding secret not base64", "MC_BINDING_TOKEN_SECRET", set("MC_BINDING_TOKEN_SECRET", "binding-secret-%%%-not-base64")},
		tc{"grpc advertise localhost", "MC_GRPC_ADVERTISE_ADDRESS", set("MC_GRPC_ADVERTISE_ADDRESS", "http://localhost:50052")},
		tc{"grpc advertise 127.x", "MC_GRPC_ADVERTISE_ADDRESS", set("MC_GRPC_ADVERTISE_ADDRESS", "http://127.0.0.2:50052")},
		tc{"wt advertise 0.0.0.0", "MC_WEBTRANSPORT_ADVERTISE_ADDRESS", set("MC_WEBTRANSPORT_ADVERTISE_ADDRESS", "https://0.0.0.0:4433")},
		tc{"wt advertise loopback with flag false", "MC_WEBTRANSPORT_ADVERTISE_ADDRESS", func(e map[string]string) {
			e["MC_WEBTRANSPORT_ADVERTISE_ADDRESS"] = "https://[::1]:4433"
			e["MC_ALLOW_LOOPBACK_ADVERTISE"] = "false"
		}},
		tc{"wt advertise http", "MC_WEBTRANSPORT_ADVERTISE_ADDRESS", set("MC_WEBTRANSPORT_ADVERTISE_ADDRESS", "http://10.0.0.1:4433")},
		tc{"grpc advertise without port", "MC_GRPC_ADVERTISE_ADDRESS", set("MC_GRPC_ADVERTISE_ADDRESS", "http://10.0.0.1")},
		tc{"loopback flag malformed", "MC_ALLOW_LOOPBACK_ADVERTISE", set("MC_ALLOW_LOOPBACK_ADVERTISE", "maybe")},
		tc{"grpc bind", "MC_GRPC_BIND_ADDRESS", set("MC_GRPC_BIND_ADDRESS", "50052")},
		tc{"health bind", "MC_HEALTH_BIND_ADDRESS", set("MC_HEALTH_BIND_ADDRESS", "0.0.0.0:99999")},
		tc{"wt bind", "MC_WEBTRANSPORT_BIND_ADDRESS", set("MC_WEBTRANSPORT_BIND_ADDRESS", "udp")},
		tc{"max meetings zero", "MC_MAX_MEETINGS", set("MC_MAX_MEETINGS", "0")},
		tc{"max participants text", "MC_MAX_PARTICIPANTS", set("MC_MAX_PARTICIPANTS", "many")},
		tc{"grace", "MC_SHUTDOWN_GRACE", set("MC_SHUTDOWN_GRACE", "20")},
		tc{"cert without key", "MC_TLS_KEY_FILE", set("MC_TLS_CERT_FILE", "/etc/mc/tls.crt")},
		tc{"key without cert", "MC_TLS_CERT_FILE", set("MC_TLS_KEY_FILE", "/etc/mc/tls.key")},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := maps.Clone(validEnv())
			c.change(env)
			p := testsupport.StartProcess(t, "meeting-controller", bin, env)
			code, err := p.Wait(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			out := strings.TrimSpace(p.Logs())
			if code != 2 || strings.Contains(out, "\n") || !strings.Contains(out, c.variable+":") {
				t.Fatalf("exit %d, output %q; want exit 2 and one line naming %s", code, out, c.variable)
			}
			for _, s := range configSecrets {
				if strings.Contains(out, s) {
					t.Fatalf("output %q reveals a secret", out)
				}
			}
		})
	}

	// Loopback is fine when local mode says so: the binary gets past
	// configuration (and fails later only because nothing listens there).
	env := validEnv()
	env["MC_ALLOW_LOOPBACK_ADVERTISE"] = "true"
	env["MC_GRPC_ADVERTISE_ADDRESS"] = "http://127.0.0.1:50052"
	if _, err := mc.LoadConfig(config.FromMap(env)); err != nil {
		t.Fatalf("loopback with MC_ALLOW_LOOPBACK_ADVERTISE=true: %v", err)
	}
}

func TestDevCertificate(t *testing.T) {
	env := validEnv()
	env["MC_ID"] = "mc-cert"
	env["MC_WEBTRANSPORT_ADVERTISE_ADDRESS"] = "https://10.1.2.3:4433"
	cfg, err := mc.LoadConfig(config.FromMap(env))
	if err != nil {
		t.Fatal(err)
	}
	cert, certPEM, keyPEM, err := mc.DevCertificate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d >= 14*24*time.Hour || time.Now().Before(cert.NotBefore) || time.Now().After(cert.NotAfter) {
		t.Fatalf("validity %v .. %v: want valid now and for less than 14 days", cert.NotBefore, cert.NotAfter)
	}
	k, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		t.Fatalf("key %T, want ECDSA P-256", cert.PublicKey)
	}
	if err := cert.VerifyHostname("10.1.2.3"); err != nil {
		t.Fatalf("SAN for the advertised host: %v", err)
	}
	if cert.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Fatalf("signature %v", cert.SignatureAlgorithm)
	}

	// The same certificate given as MC_TLS_CERT_FILE/MC_TLS_KEY_FILE is what
	// MC serves and pins.
	dir := t.TempDir()
	env["MC_TLS_CERT_FILE"], env["MC_TLS_KEY_FILE"] = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(env["MC_TLS_CERT_FILE"], certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(env["MC_TLS_KEY_FILE"], keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = mc.LoadConfig(config.FromMap(env)); err != nil {
		t.Fatal(err)
	}
	srv, err := mc.New(cfg, logging.NewTo(io.Discard, "meeting-controller", "error"))
	if err != nil {
		t.Fatal(err)
	}
	if srv.CertSHA256() != mc.CertSHA256(cert.Raw) {
		t.Fatalf("loaded certificate hash %s, want %s", srv.CertSHA256(), mc.CertSHA256(cert.Raw))
	}
	env["MC_TLS_KEY_FILE"] = filepath.Join(dir, "missing.key")
	cfg, _ = mc.LoadConfig(config.FromMap(env))
	if _, err := mc.New(cfg, logging.NewTo(io.Discard, "meeting-controller", "error")); err == nil || !strings.Contains(err.Error(), "missing.key") {
		t.Fatalf("missing key file: %v, want an error naming the file", err)
	}
}
