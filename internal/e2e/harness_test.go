package e2e_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/localstack"
	"github.com/darktower/devstack/internal/secret"
	"github.com/darktower/devstack/internal/testsupport"
)

func TestMain(m *testing.M) { testsupport.Main(m) }

// stack is a running control plane (two of each service) and the clients
// the tests use.
type stack struct {
	*testsupport.ControlPlane
	t *testing.T

	gcAPI       []internalv1.GlobalControllerServiceClient // one connection per GC, reconnecting
	verifierTok []string                                   // the verifier's token from each AC
	joinTok     string                                     // the web-client's token (meeting.join) from AC 0
}

// tuning is the control plane's timers, which the tests wait on.
var tuning = testsupport.TestTuning

// joinBurst is each GC's per-caller join burst here: the race below sends
// 100 joins at once to each GC, all as web-client.
const joinBurst = 150

func startStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t}
	// Registered first, so it runs last: after every process has stopped
	// and written its last lines.
	t.Cleanup(func() {
		if s.ControlPlane != nil {
			s.assertNoSecretsLogged()
		}
	})
	s.ControlPlane = testsupport.StartControlPlane(t, testsupport.ControlPlaneOptions{
		Replicas: 2,
		Env: func(binary string, _ int, env map[string]string) {
			if binary == "global-controller" {
				env["GC_JOIN_BURST"], env["GC_JOIN_INTERVAL"] = strconv.Itoa(joinBurst), "50ms"
			}
		},
	})
	for i := range s.Topo.GC {
		s.gcAPI = append(s.gcAPI, s.gcClient(i))
	}
	for i := range s.Topo.AC {
		s.verifierTok = append(s.verifierTok, s.token(i, localstack.VerifierClientID, s.Topo.Secrets.VerifierClientSecret))
	}
	s.joinTok = s.token(0, localstack.WebClientID, s.Topo.Secrets.WebClientSecret)
	return s
}

// secretValues lists every secret the stack was given.
func (s *stack) secretValues() map[string]string {
	sec := s.Topo.Secrets
	return map[string]string{
		"postgres password":      s.Postgres.Password,
		"redis password":         s.Redis.Password,
		"signing key":            sec.SigningKey.Reveal(),
		"binding secret":         sec.BindingSecret.Reveal(),
		"GC client secret":       sec.GCClientSecret.Reveal(),
		"MC client secret":       sec.MCClientSecret.Reveal(),
		"verifier client secret": sec.VerifierClientSecret.Reveal(),
		"web client secret":      sec.WebClientSecret.Reveal(),
	}
}

// assertNoSecretsLogged scans every line every process wrote.
func (s *stack) assertNoSecretsLogged() {
	lines := 0
	for _, p := range s.Procs {
		logs := p.Logs()
		lines += strings.Count(logs, "\n")
		for what, v := range s.secretValues() {
			if v != "" && strings.Contains(logs, v) {
				s.t.Errorf("%s logged the %s", p.Name, what)
			}
		}
	}
	if lines == 0 && !s.t.Failed() {
		s.t.Error("no process wrote a log line: the secret scan proved nothing")
	}
}

// token gets a token for a client from AC replica i through the standard
// client-credentials flow.
func (s *stack) token(i int, clientID string, sec secret.Value) string {
	s.t.Helper()
	tok, err := auth.TokenSource(context.Background(), s.Topo.ACURL(i), clientID, sec).Token()
	if err != nil {
		s.t.Fatalf("token for %s from AC %d: %v", clientID, i, err)
	}
	return tok.AccessToken
}

// gcClient dials GC replica i's gRPC API; bearer may be empty.
func (s *stack) gcClient(i int) internalv1.GlobalControllerServiceClient {
	return internalv1.NewGlobalControllerServiceClient(grpcConn(s.t, s.Topo.GCGRPCAddr(i)))
}

// list asks GC replica i for the registry with the verifier's token from
// AC i. It is safe to call from any goroutine.
func (s *stack) list(ctx context.Context, i int) ([]*internalv1.MeetingController, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := s.gcAPI[i].ListMeetingControllers(withBearer(ctx, s.verifierTok[i]), &internalv1.ListMeetingControllersRequest{})
	if err != nil {
		return nil, err
	}
	return resp.Controllers, nil
}

func httpGetJSON(url, bearer string, out any) (int, error) {
	resp, err := request(http.MethodGet, url, bearer)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, nil
}

// postJSON posts an empty body with bearer (if any) and decodes the answer.
func postJSON(url, bearer string, out any) (int, error) {
	resp, err := request(http.MethodPost, url, bearer)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("decoding %s answer: %w", url, err)
	}
	return resp.StatusCode, nil
}

// request sends an empty-bodied request with bearer, if any.
func request(method, url, bearer string) (*http.Response, error) {
	req, _ := http.NewRequest(method, url, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return http.DefaultClient.Do(req)
}

func grpcConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// realSigner rebuilds AC's signer from the stack's signing key.
func realSigner(t *testing.T, b64 string) *auth.Signer {
	t.Helper()
	seed, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	s, err := auth.NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
