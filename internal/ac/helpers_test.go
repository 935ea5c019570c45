package ac

import (
	"context"
	"crypto/rand"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/internal/logging"
	"github.com/darktower/devstack/internal/metrics"
	"github.com/darktower/devstack/internal/secret"
	"github.com/darktower/devstack/internal/testsupport"
)

func newSeed(t *testing.T) []byte {
	t.Helper()
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	return seed
}

func newSigner(t *testing.T, seed []byte) *auth.Signer {
	t.Helper()
	s, err := auth.NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// client builds a Client with a random secret.
func client(t *testing.T, id, serviceType string, scopes ...string) Client {
	return Client{ID: id, Secret: secret.New("s3cr3t-" + testsupport.RandomToken(t, 12)), ServiceType: serviceType, Scopes: scopes}
}

// migratedPostgres starts Postgres with the schema applied and a pool on it.
func migratedPostgres(t *testing.T) (*testsupport.Postgres, *pgxpool.Pool) {
	t.Helper()
	pg := testsupport.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := database.Migrate(ctx, pg.URL(), 0); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	pool, err := database.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pg, pool
}

// acServer is a Service behind a real HTTP server.
type acServer struct {
	svc    *Service
	signer *auth.Signer
	reg    *prometheus.Registry
	logs   *testsupport.Buffer
	url    string
}

func startAC(t *testing.T, pool *pgxpool.Pool, seed []byte, clients []Client) *acServer {
	t.Helper()
	a := &acServer{signer: newSigner(t, seed), reg: metrics.NewRegistry(), logs: &testsupport.Buffer{}}
	svc, err := New(Options{Pool: pool, Signer: a.signer, TokenTTL: time.Hour, Log: logging.NewTo(a.logs, "ac-service", "debug"), Registry: a.reg})
	if err != nil {
		t.Fatal(err)
	}
	a.svc = svc
	if clients != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := svc.Sync(ctx, clients); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

// logLines returns the JSON log lines whose msg is msg.
func (a *acServer) logLines(msg string) []string {
	var out []string
	for _, l := range strings.Split(a.logs.String(), "\n") {
		if strings.Contains(l, `"msg":"`+msg+`"`) {
			out = append(out, l)
		}
	}
	return out
}
