package mc_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/config"
	"github.com/darktower/devstack/internal/grpcserver"
	"github.com/darktower/devstack/internal/logging"
	"github.com/darktower/devstack/internal/mc"
	"github.com/darktower/devstack/internal/testsupport"
)

func TestMain(m *testing.M) { testsupport.Main(m) }

const mcClientID = "meeting-controller-test"

// stack is what an MC needs around it: Redis, a token endpoint signing with a
// test issuer's key, and a GC gRPC server behind the real auth interceptor.
type stack struct {
	redis        *testsupport.Redis
	issuer       *testsupport.Issuer
	acURL        string
	clientSecret string
	gc           *fakeGC
	// bogusTokens: how many of the next tokens the endpoint signs with a key
	// GC does not know (as after a key change at AC).
	bogusTokens atomic.Int32
}

func newStack(t *testing.T) *stack {
	t.Helper()
	st := &stack{
		redis:        testsupport.StartRedis(t),
		issuer:       testsupport.NewIssuer(t),
		clientSecret: "mc-secret-" + testsupport.RandomToken(t, 12),
	}
	st.acURL = startTokenEndpoint(t, st.issuer, map[string]tokenClient{
		mcClientID: {secret: st.clientSecret, scope: auth.ScopeWriteGC, serviceType: auth.ServiceMeetingController},
	}, &st.bogusTokens)
	st.gc = newFakeGC(t, st.issuer, "127.0.0.1:"+strconv.Itoa(testsupport.FreePort(t)))
	return st
}

// env is a complete, valid MC environment for this stack.
func (st *stack) env(t *testing.T, id string) map[string]string {
	t.Helper()
	secret := make([]byte, 32)
	copy(secret, testsupport.RandomToken(t, 16))
	grpcPort, healthPort, wtPort := testsupport.FreePort(t), testsupport.FreePort(t), testsupport.FreeUDPPort(t)
	return map[string]string{
		"MC_ID":                             id,
		"MC_REGION":                         "test-region",
		"GC_GRPC_URL":                       "http://" + st.gc.addr,
		"AC_INTERNAL_URL":                   st.acURL,
		"AC_JWKS_URL":                       st.issuer.JWKSURL,
		"MC_CLIENT_ID":                      mcClientID,
		"MC_CLIENT_SECRET":                  st.clientSecret,
		"REDIS_URL":                         st.redis.URL(),
		"MC_GRPC_BIND_ADDRESS":              fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"MC_HEALTH_BIND_ADDRESS":            fmt.Sprintf("127.0.0.1:%d", healthPort),
		"MC_WEBTRANSPORT_BIND_ADDRESS":      fmt.Sprintf("127.0.0.1:%d", wtPort),
		"MC_GRPC_ADVERTISE_ADDRESS":         fmt.Sprintf("http://127.0.0.1:%d", grpcPort),
		"MC_WEBTRANSPORT_ADVERTISE_ADDRESS": fmt.Sprintf("https://127.0.0.1:%d", wtPort),
		"MC_ALLOW_LOOPBACK_ADVERTISE":       "true",
		"MC_BINDING_TOKEN_SECRET":           base64.StdEncoding.EncodeToString(secret),
		"MC_MAX_MEETINGS":                   "100",
		"MC_SHUTDOWN_GRACE":                 "10s",
	}
}

// runningMC is an MC served in-process by mc.Run.
type runningMC struct {
	srv    *mc.Server
	cfg    mc.Config
	env    map[string]string
	cancel context.CancelFunc
	done   chan error
	logs   *testsupport.Buffer
	issuer *testsupport.Issuer
}

func (st *stack) startMC(t *testing.T, id string, change func(map[string]string)) *runningMC {
	t.Helper()
	env := st.env(t, id)
	if change != nil {
		change(env)
	}
	cfg, err := mc.LoadConfig(config.FromMap(env))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	cfg.RegisterBackoffMin, cfg.RegisterBackoffMax, cfg.RPCTimeout = 50*time.Millisecond, 400*time.Millisecond, 2*time.Second
	logs := &testsupport.Buffer{}
	srv, err := mc.New(cfg, logging.NewTo(logs, "meeting-controller", "debug"))
	if err != nil {
		t.Fatalf("mc.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningMC{srv: srv, cfg: cfg, env: env, cancel: cancel, done: make(chan error, 1), logs: logs, issuer: st.issuer}
	go func() { r.done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			t.Errorf("MC %s did not stop", id)
		}
		if t.Failed() || os.Getenv("MC_TEST_LOGS") != "" {
			t.Logf("--- MC %s logs ---\n%s", id, logs.String())
		}
		for _, s := range secretsOf(st, env) {
			if strings.Contains(logs.String(), s) {
				t.Errorf("a secret appears in the MC logs")
			}
		}
	})
	if err := testsupport.WaitTCP(cfg.HealthBind, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return r
}

// secretsOf lists the secret values an MC with env holds.
func secretsOf(st *stack, env map[string]string) []string {
	raw, _ := base64.StdEncoding.DecodeString(env["MC_BINDING_TOKEN_SECRET"])
	return []string{st.clientSecret, st.redis.Password, env["MC_BINDING_TOKEN_SECRET"], string(raw)}
}

func (r *runningMC) healthURL(path string) string { return "http://" + r.cfg.HealthBind + path }

// meetingURL is what GC's join answers: the meeting's URL with a meeting
// token AC signed for a participant, this meeting and this MC.
func (r *runningMC) meetingURL(id string) string {
	tok, _, err := r.issuer.Signer.SignMeeting("p-test", id, r.cfg.ID, auth.MeetingTokenTTL)
	if err != nil {
		panic(err)
	}
	return r.bareURL(id) + "?token=" + tok
}

// bareURL is the meeting's URL without a token.
func (r *runningMC) bareURL(id string) string {
	return r.cfg.WTAdvertise + mc.MeetingPathPrefix + id
}

// stop cancels Run and returns its result.
func (r *runningMC) stop(t *testing.T, within time.Duration) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(within):
		t.Fatalf("Run did not return within %v", within)
		return nil
	}
}

// dialMC is a gRPC client to MC's MeetingControllerService with an optional token.
func dialMC(t *testing.T, r *runningMC) pb.MeetingControllerServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(r.cfg.GRPCBind, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewMeetingControllerServiceClient(conn)
}

func withToken(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// gcToken is what AC issues GC for calls to r: aud is r's id.
func (st *stack) gcToken(t *testing.T, r *runningMC) string {
	t.Helper()
	tok, _, err := st.issuer.Signer.SignFor("global-controller", auth.ScopeWriteMC, auth.ServiceGlobalController, r.cfg.ID, auth.AudienceTTL)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ---- token endpoint ----

type tokenClient struct{ secret, scope, serviceType string }

// startTokenEndpoint serves the client-credentials grant (form body, client in
// HTTP Basic or the body) the way AC does, signing with the issuer's key.
func startTokenEndpoint(t *testing.T, is *testsupport.Issuer, clients map[string]tokenClient, bogus *atomic.Int32) string {
	other := testsupport.NewIssuer(t)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+auth.TokenPath, func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		id, secret, basic := r.BasicAuth()
		if basic {
			id, _ = url.QueryUnescape(id)
			secret, _ = url.QueryUnescape(secret)
		} else {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		w.Header().Set("Content-Type", "application/json")
		if r.PostForm.Get("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"unsupported_grant_type"}`))
			return
		}
		c, ok := clients[id]
		if !ok || c.secret != secret {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		signer := is.Signer
		if bogus.Add(-1) >= 0 {
			signer = other.Signer
		} else {
			bogus.Store(0)
		}
		tok, _, err := signer.Sign(id, c.scope, c.serviceType, time.Hour)
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600, "scope": c.scope})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// ---- GC ----

type gcEvent struct {
	kind     string // register, fast, comprehensive, deregister
	at       time.Time
	register *pb.RegisterMCRequest
	health   pb.HealthStatus
	capacity *pb.Capacity
	cpu, mem float64
	reason   string
}

// fakeGC is a real gRPC GlobalControllerService on loopback, behind the real
// grpcserver auth, that records what MC sends. Like GC, it answers NOT_FOUND
// to heartbeats from controllers it does not know, and PERMISSION_DENIED to
// calls without the registration key it returned.
type fakeGC struct {
	pb.UnimplementedGlobalControllerServiceServer
	t      *testing.T
	issuer *testsupport.Issuer
	addr   string

	mu             sync.Mutex
	events         []gcEvent
	known          map[string]string // id -> the registration key returned
	keys           int
	fastMs, compMs uint32
	deregisterGate chan struct{}
	srv            *grpcserver.Server
	stopped        chan struct{}
}

func newFakeGC(t *testing.T, is *testsupport.Issuer, addr string) *fakeGC {
	g := &fakeGC{t: t, issuer: is, addr: addr, known: map[string]string{}, fastMs: 100, compMs: 300}
	t.Cleanup(g.stop)
	return g
}

var gcRules = func() map[string]auth.Requirement {
	r := auth.Requirement{Scope: auth.ScopeWriteGC, ServiceTypes: []string{auth.ServiceMeetingController}}
	return map[string]auth.Requirement{
		pb.GlobalControllerService_RegisterMC_FullMethodName:             r,
		pb.GlobalControllerService_FastHeartbeat_FullMethodName:          r,
		pb.GlobalControllerService_ComprehensiveHeartbeat_FullMethodName: r,
		pb.GlobalControllerService_DeregisterMC_FullMethodName:           r,
	}
}()

// start serves on g.addr (again after stop, with the same port).
func (g *fakeGC) start() {
	g.t.Helper()
	v, err := auth.NewValidator(g.t.Context(), g.issuer.JWKSURL, logging.NewTo(&bytes.Buffer{}, "gc", "error"))
	if err != nil {
		g.t.Fatal(err)
	}
	srv := grpcserver.New(v, gcRules, prometheus.NewRegistry())
	pb.RegisterGlobalControllerServiceServer(srv, g)
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		g.t.Fatalf("GC listen %s: %v", g.addr, err)
	}
	stopped := make(chan struct{})
	g.mu.Lock()
	g.srv, g.stopped = srv, stopped
	g.mu.Unlock()
	go func() { _ = srv.Server.Serve(ln); close(stopped) }()
}

// stop ends the server abruptly, as a crashed GC would.
func (g *fakeGC) stop() {
	g.mu.Lock()
	srv, stopped := g.srv, g.stopped
	g.srv = nil
	g.mu.Unlock()
	if srv != nil {
		srv.Stop()
		<-stopped
	}
}

// forget drops every registration, as a GC that pruned the row would.
func (g *fakeGC) forget() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.known = map[string]string{}
}

func (g *fakeGC) record(e gcEvent) {
	e.at = time.Now()
	g.mu.Lock()
	g.events = append(g.events, e)
	g.mu.Unlock()
}

func (g *fakeGC) snapshot() []gcEvent {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]gcEvent(nil), g.events...)
}

func (g *fakeGC) count(kind string) int {
	n := 0
	for _, e := range g.snapshot() {
		if e.kind == kind {
			n++
		}
	}
	return n
}

func (g *fakeGC) RegisterMC(_ context.Context, req *pb.RegisterMCRequest) (*pb.RegisterMCResponse, error) {
	g.record(gcEvent{kind: "register", register: req})
	g.mu.Lock()
	defer g.mu.Unlock()
	if k, ok := g.known[req.GetId()]; ok && k != req.GetRegistrationKey() {
		return nil, status.Error(codes.PermissionDenied, "registration_key does not match")
	}
	g.keys++
	key := fmt.Sprintf("key-%d", g.keys)
	g.known[req.GetId()] = key
	return &pb.RegisterMCResponse{Accepted: true, FastHeartbeatIntervalMs: g.fastMs, ComprehensiveHeartbeatIntervalMs: g.compMs, RegistrationKey: key}, nil
}

// check is GC's answer to a call for id with key: nil, NOT_FOUND or
// PERMISSION_DENIED.
func (g *fakeGC) check(id, key string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	k, ok := g.known[id]
	switch {
	case !ok:
		return status.Error(codes.NotFound, "unknown controller")
	case k != key:
		return status.Error(codes.PermissionDenied, "registration_key does not match")
	}
	return nil
}

func (g *fakeGC) FastHeartbeat(_ context.Context, req *pb.FastHeartbeatRequest) (*pb.FastHeartbeatResponse, error) {
	if err := g.check(req.GetControllerId(), req.GetRegistrationKey()); err != nil {
		g.record(gcEvent{kind: "fast-" + strings.ToLower(strings.ReplaceAll(status.Code(err).String(), "Found", "-found"))})
		return nil, err
	}
	g.record(gcEvent{kind: "fast", health: req.GetHealth(), capacity: req.GetCapacity()})
	return &pb.FastHeartbeatResponse{Acknowledged: true, Timestamp: timestamppb.Now()}, nil
}

func (g *fakeGC) ComprehensiveHeartbeat(_ context.Context, req *pb.ComprehensiveHeartbeatRequest) (*pb.ComprehensiveHeartbeatResponse, error) {
	if err := g.check(req.GetControllerId(), req.GetRegistrationKey()); err != nil {
		g.record(gcEvent{kind: "comprehensive-" + strings.ToLower(strings.ReplaceAll(status.Code(err).String(), "Found", "-found"))})
		return nil, err
	}
	g.record(gcEvent{kind: "comprehensive", health: req.GetHealth(), capacity: req.GetCapacity(),
		cpu: req.GetCpuUsagePercent(), mem: req.GetMemoryUsagePercent()})
	return &pb.ComprehensiveHeartbeatResponse{Acknowledged: true, Timestamp: timestamppb.Now()}, nil
}

func (g *fakeGC) DeregisterMC(ctx context.Context, req *pb.DeregisterMCRequest) (*pb.DeregisterMCResponse, error) {
	g.mu.Lock()
	gate := g.deregisterGate
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := g.check(req.GetControllerId(), req.GetRegistrationKey()); err != nil {
		g.record(gcEvent{kind: "deregister-denied"})
		return nil, err
	}
	g.record(gcEvent{kind: "deregister", reason: req.GetReason()})
	g.mu.Lock()
	delete(g.known, req.GetControllerId())
	g.mu.Unlock()
	return &pb.DeregisterMCResponse{Acknowledged: true}, nil
}

// ---- helpers ----

func httpStatus(t *testing.T, u string) int {
	t.Helper()
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// metric returns the value of the series name{labels...} from a /metrics page
// (labels as "k=v" pairs), or -1 when it is absent.
func metric(t *testing.T, u, name string, labels ...string) float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		series := line[:i]
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		match := true
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if !strings.Contains(series, k+`="`+v+`"`) {
				match = false
			}
		}
		if match {
			f, err := strconv.ParseFloat(line[i+1:], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	return -1
}
