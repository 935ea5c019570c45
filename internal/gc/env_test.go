package gc

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/internal/logging"
	"github.com/darktower/devstack/internal/metrics"
	"github.com/darktower/devstack/internal/secret"
	"github.com/darktower/devstack/internal/testsupport"
)

// gcEnv is one real GC replica on loopback ports over a real Postgres, with
// a test issuer standing in for AC's keys and token endpoint.
type gcEnv struct {
	pg       *testsupport.Postgres
	pool     *pgxpool.Pool
	iss      *testsupport.Issuer
	cfg      Config
	app      *App
	grpcAddr string
	httpURL  string
	logs     *testsupport.Buffer
}

// migratedPostgres starts Postgres and applies the embedded schema.
func migratedPostgres(t testing.TB) *testsupport.Postgres {
	t.Helper()
	pg := testsupport.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := database.Migrate(ctx, pg.URL(), 0); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return pg
}

const (
	gcClientID     = "global-controller"
	gcClientSecret = "gc-test-secret"
)

// tokenEndpoint is a client-credentials endpoint that signs GC's token with
// the issuer's key, so GC's real auth.TokenSource path runs in the tests.
func tokenEndpoint(t testing.TB, iss *testsupport.Issuer) string {
	v, err := auth.NewStaticValidator(iss.Signer.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == auth.MeetingTokenPath {
			// Like AC: GC's own token, then a token bound to the three ids.
			tok, _ := auth.BearerToken(r.Header.Get("Authorization"))
			c, err := v.Validate(r.Context(), tok)
			var body struct {
				MeetingID     string `json:"meeting_id"`
				ParticipantID string `json:"participant_id"`
				ControllerID  string `json:"controller_id"`
			}
			if err != nil || c.Subject != gcClientID || len(c.Audience) > 0 || json.NewDecoder(r.Body).Decode(&body) != nil {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			mt, _, err := iss.Signer.SignMeeting(body.ParticipantID, body.MeetingID, body.ControllerID, auth.MeetingTokenTTL)
			if err != nil {
				w.WriteHeader(500)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"meeting_token": mt, "token_type": "Bearer", "expires_in": 300})
			return
		}
		id, pw, ok := r.BasicAuth()
		if r.URL.Path != auth.TokenPath || !ok || id != gcClientID || pw != gcClientSecret ||
			r.FormValue("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		ttl := time.Hour
		if r.FormValue("audience") != "" {
			ttl = auth.AudienceTTL
		}
		tok, _, err := iss.Signer.SignFor(gcClientID, auth.ScopeWriteMC, auth.ServiceGlobalController, r.FormValue("audience"), ttl)
		if err != nil {
			w.WriteHeader(500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl.Seconds()), "scope": auth.ScopeWriteMC})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// startGC runs a GC replica against pg until the test ends.
func startGC(t testing.TB, pg *testsupport.Postgres, mutate func(*Config)) *gcEnv {
	t.Helper()
	e := &gcEnv{pg: pg, iss: testsupport.NewIssuer(t), logs: &testsupport.Buffer{}}
	e.cfg = Config{
		DatabaseURL:   secret.New(pg.URL()),
		ClientID:      gcClientID,
		ClientSecret:  secret.New(gcClientSecret),
		Region:        "local",
		ID:            "gc-test",
		ACJWKSURL:     e.iss.JWKSURL,
		ACInternalURL: tokenEndpoint(t, e.iss),

		StalenessThreshold: 30 * time.Second, StalenessInterval: 5 * time.Second,
		UnhealthyRetention: time.Hour, FastHeartbeat: 10 * time.Second,
		ComprehensiveInterval: 30 * time.Second, ShutdownGrace: 5 * time.Second,
		JoinBurst: 100, JoinInterval: 10 * time.Millisecond, JoinMaxCallers: 100,
	}
	if mutate != nil {
		mutate(&e.cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := database.Connect(ctx, e.cfg.DatabaseURL.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	e.pool = pool
	log := logging.NewTo(e.logs, "global-controller", "debug")
	v, err := auth.NewValidator(ctx, e.cfg.ACJWKSURL, log)
	if err != nil {
		t.Fatal(err)
	}
	gl, hl := listen(t), listen(t)
	e.grpcAddr, e.httpURL = gl.Addr().String(), "http://"+hl.Addr().String()
	e.app = New(ctx, e.cfg, pool, v, metrics.NewRegistry(), log)
	done := make(chan error, 1)
	go func() { done <- e.app.Serve(ctx, gl, hl) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("GC Serve: %v", err)
		}
		pool.Close()
		if t.Failed() {
			t.Logf("--- GC logs ---\n%s", e.logs.String())
		}
	})
	if err := testsupport.WaitHTTP(e.httpURL+"/ready", 200, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	return e
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// client dials addr; with token "" calls carry no authorization. Like a
// real MC it remembers the registration key of each id it registered and
// presents it when a request carries none; another client is another MC.
func client(t testing.TB, addr, token string) internalv1.GlobalControllerServiceClient {
	t.Helper()
	return &keyedClient{GlobalControllerServiceClient: internalv1.NewGlobalControllerServiceClient(conn(t, addr, token)), keys: map[string]string{}}
}

type keyedClient struct {
	internalv1.GlobalControllerServiceClient
	mu   sync.Mutex
	keys map[string]string
}

func (k *keyedClient) key(id, given string) string {
	if given != "" {
		return given
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys[id]
}

func (k *keyedClient) RegisterMC(ctx context.Context, r *internalv1.RegisterMCRequest, opts ...grpc.CallOption) (*internalv1.RegisterMCResponse, error) {
	r.RegistrationKey = k.key(r.Id, r.RegistrationKey)
	resp, err := k.GlobalControllerServiceClient.RegisterMC(ctx, r, opts...)
	if err == nil {
		k.mu.Lock()
		k.keys[r.Id] = resp.RegistrationKey
		k.mu.Unlock()
	}
	return resp, err
}

func (k *keyedClient) FastHeartbeat(ctx context.Context, r *internalv1.FastHeartbeatRequest, opts ...grpc.CallOption) (*internalv1.FastHeartbeatResponse, error) {
	r.RegistrationKey = k.key(r.ControllerId, r.RegistrationKey)
	return k.GlobalControllerServiceClient.FastHeartbeat(ctx, r, opts...)
}

func (k *keyedClient) ComprehensiveHeartbeat(ctx context.Context, r *internalv1.ComprehensiveHeartbeatRequest, opts ...grpc.CallOption) (*internalv1.ComprehensiveHeartbeatResponse, error) {
	r.RegistrationKey = k.key(r.ControllerId, r.RegistrationKey)
	return k.GlobalControllerServiceClient.ComprehensiveHeartbeat(ctx, r, opts...)
}

func (k *keyedClient) DeregisterMC(ctx context.Context, r *internalv1.DeregisterMCRequest, opts ...grpc.CallOption) (*internalv1.DeregisterMCResponse, error) {
	r.RegistrationKey = k.key(r.ControllerId, r.RegistrationKey)
	return k.GlobalControllerServiceClient.DeregisterMC(ctx, r, opts...)
}

func conn(t testing.TB, addr, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.PerRPC(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}))))
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func (e *gcEnv) mcToken(t testing.TB) string {
	return e.iss.Token(t, "meeting-controller", auth.ScopeWriteGC, auth.ServiceMeetingController)
}

// joinToken is a web-client token: what a browser presents to join.
func (e *gcEnv) joinToken(t testing.TB) string {
	return e.iss.Token(t, "web-client", auth.ScopeMeetingJoin, auth.ServiceWebClient)
}

func (e *gcEnv) verifierToken(t testing.TB) string {
	return e.iss.Token(t, "verifier", auth.ScopeReadGC, auth.ServiceVerifier)
}

func regReq(id, region string) *internalv1.RegisterMCRequest {
	return &internalv1.RegisterMCRequest{
		Id: id, Region: region,
		GrpcEndpoint: "http://127.0.0.1:50052", WebtransportEndpoint: "https://127.0.0.1:4433",
		MaxMeetings: 10, MaxParticipants: 100, WebtransportCertSha256: strings.Repeat("ab", 32),
	}
}

func fastHB(id string, current uint32, h internalv1.HealthStatus) *internalv1.FastHeartbeatRequest {
	return &internalv1.FastHeartbeatRequest{
		ControllerId: id, Health: h,
		Capacity: &internalv1.Capacity{MaxMeetings: 10, CurrentMeetings: current, MaxParticipants: 100, CurrentParticipants: current * 3},
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// httpDo sends a request and returns status and body.
func httpDo(t testing.TB, method, url, token string) (int, string) {
	t.Helper()
	code, _, body := httpDoHeader(t, method, url, token)
	return code, body
}

// httpDoHeader is httpDo that returns the answer's header too.
func httpDoHeader(t testing.TB, method, url, token string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
