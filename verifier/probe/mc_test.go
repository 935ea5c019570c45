package probe

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/testsupport"
	"github.com/darktower/devstack/verifier/classify"
)

// startWebTransport serves WebTransport on a loopback UDP port with a fresh
// self-signed certificate, answering like MC: 401 without a meeting token.
// Under /accept-all it accepts any session, under /no-auth it answers 404
// (an MC that looks meetings up without a token). It returns the endpoint
// and the certificate's SHA-256 in hex.
func startWebTransport(t *testing.T) (string, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mc"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h3 := &http3.Server{
		TLSConfig:  http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}),
		QUICConfig: &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true},
	}
	webtransport.ConfigureHTTP3Server(h3)
	s := &webtransport.Server{H3: h3, CheckOrigin: func(*http.Request) bool { return true }}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/no-auth/") {
			http.NotFound(w, r)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/accept-all/") {
			http.Error(w, "meeting token required", http.StatusUnauthorized)
			return
		}
		sess, err := s.Upgrade(w, r)
		if err == nil {
			<-sess.Context().Done()
		}
	})
	h3.Handler = mux
	go func() { _ = s.Serve(conn) }()
	t.Cleanup(func() { s.Close(); conn.Close() })
	return "https://" + conn.LocalAddr().String(), hex.EncodeToString(sum[:])
}

func classOf(err error) classify.Class { return classify.Classify(err, classify.Info{}).ID }

func TestWebTransportHandshake(t *testing.T) {
	endpoint, hash := startWebTransport(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	obs, err := webTransportHandshake(ctx, endpoint, hash)
	if err != nil || !strings.Contains(obs, "401") {
		t.Fatalf("pinned handshake: %q, %v", obs, err)
	}
	if _, err := webTransportHandshake(ctx, endpoint+"/no-auth", hash); classOf(err) != classify.MCWTNoAuth {
		t.Fatalf("MC without the token check: %v (class %s), want mc.wt-no-auth", err, classOf(err))
	}
	wrong := sha256.Sum256([]byte("another certificate"))
	if _, err := webTransportHandshake(ctx, endpoint, hex.EncodeToString(wrong[:])); classOf(err) != classify.MCPinMismatch {
		t.Fatalf("wrong pin: %v (class %s), want mc.pin-mismatch", err, classOf(err))
	}
	if _, err := webTransportHandshake(ctx, endpoint+"/accept-all", hash); classOf(err) != classify.MCWTAcceptedUnknown {
		t.Fatalf("accept-all: %v (class %s)", err, classOf(err))
	}
	if _, err := webTransportHandshake(ctx, "http://127.0.0.1:1", hash); classOf(err) != classify.MCBadEndpoint {
		t.Fatalf("http endpoint: %v", err)
	}
	silent := "https://127.0.0.1:" + strconv.Itoa(testsupport.FreeUDPPort(t))
	sctx, scancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer scancel()
	if _, err := webTransportHandshake(sctx, silent, hash); classOf(err) != classify.MCQUICTimeout {
		t.Fatalf("nothing listening: %v (class %s), want mc.quic-timeout", err, classOf(err))
	}
}

func mcAt(id string, h internalv1.HealthStatus, age time.Duration, now time.Time) *internalv1.MeetingController {
	return &internalv1.MeetingController{Id: id, Health: h, LastHeartbeatAt: timestamppb.New(now.Add(-age))}
}

func TestJudgeRegistry(t *testing.T) {
	now := time.Now()
	const H, U = internalv1.HealthStatus_HEALTH_STATUS_HEALTHY, internalv1.HealthStatus_HEALTH_STATUS_UNHEALTHY
	const D = internalv1.HealthStatus_HEALTH_STATUS_DRAINING
	th := 5 * time.Second
	cases := []struct {
		name  string
		list  []*internalv1.MeetingController
		count int
		ids   []string
		want  classify.Class
	}{
		{"all live", []*internalv1.MeetingController{mcAt("a", H, time.Second, now), mcAt("b", H, 0, now)}, 2, nil, ""},
		{"old rows of replaced pods are ignored", []*internalv1.MeetingController{mcAt("a", H, 0, now), mcAt("b", H, 0, now), mcAt("old", U, time.Hour, now)}, 2, nil, ""},
		{"one missing", []*internalv1.MeetingController{mcAt("a", H, 0, now)}, 2, nil, classify.GCMCMissing},
		{"one stale", []*internalv1.MeetingController{mcAt("a", H, 0, now), mcAt("b", H, 9*time.Second, now)}, 2, nil, classify.GCMCStale},
		{"one draining", []*internalv1.MeetingController{mcAt("a", H, 0, now), mcAt("b", D, 0, now)}, 2, nil, classify.GCMCUnhealthy},
		{"one too many", []*internalv1.MeetingController{mcAt("a", H, 0, now), mcAt("b", H, 0, now), mcAt("c", H, 0, now)}, 2, nil, classify.GCMCUnexpected},
		{"ids: missing", []*internalv1.MeetingController{mcAt("a", H, 0, now), mcAt("c", H, 0, now)}, 2, []string{"a", "b"}, classify.GCMCMissing},
		{"ids: stale wins", []*internalv1.MeetingController{mcAt("a", U, 9*time.Second, now)}, 2, []string{"a", "b"}, classify.GCMCStale},
		{"ids: unexpected", []*internalv1.MeetingController{mcAt("a", H, 0, now), mcAt("b", H, 0, now), mcAt("x", H, 0, now)}, 2, []string{"a", "b"}, classify.GCMCUnexpected},
		{"ids: ok", []*internalv1.MeetingController{mcAt("a", H, 0, now), mcAt("b", H, 0, now)}, 2, []string{"a", "b"}, ""},
	}
	for _, c := range cases {
		live, obs, err := judgeRegistry(c.list, c.count, c.ids, th, now)
		var f *classify.Finding
		var got classify.Class
		if errors.As(err, &f) {
			got = f.Class
		}
		if got != c.want || (err == nil && len(live) != c.count) || obs == "" {
			t.Errorf("%s: class %q (%v), live %d, want %q", c.name, got, err, len(live), c.want)
		}
	}
}

// Issue 11 item 3: a fleet that is registered and healthy but full fails
// gc.registration with gc.no-capacity; the evidence gives each MC's room.
func TestJudgeCapacity(t *testing.T) {
	withCap := func(id string, maxM, curM, maxP, curP uint32) *internalv1.MeetingController {
		return &internalv1.MeetingController{Id: id, Capacity: &internalv1.Capacity{MaxMeetings: maxM, CurrentMeetings: curM, MaxParticipants: maxP, CurrentParticipants: curP}}
	}
	cases := []struct {
		name string
		live []*internalv1.MeetingController
		want classify.Class
	}{
		{"room", []*internalv1.MeetingController{withCap("a", 100, 100, 200, 0), withCap("b", 100, 3, 200, 9)}, ""},
		{"meetings full", []*internalv1.MeetingController{withCap("a", 100, 100, 200, 0), withCap("b", 100, 100, 200, 9)}, classify.GCNoCapacity},
		{"participants full", []*internalv1.MeetingController{withCap("a", 100, 1, 200, 200), withCap("b", 100, 100, 200, 0)}, classify.GCNoCapacity},
	}
	for _, c := range cases {
		free, err := judgeCapacity(c.live)
		var f *classify.Finding
		var got classify.Class
		if errors.As(err, &f) {
			got = f.Class
		}
		if got != c.want || !strings.Contains(free, "a ") || !strings.Contains(free, "meetings") {
			t.Errorf("%s: class %q (%v), evidence %q; want %q", c.name, got, err, free, c.want)
		}
	}
	if free, _ := judgeCapacity([]*internalv1.MeetingController{withCap("b", 100, 3, 200, 9)}); free != "b 97/100 meetings, 191/200 participants" {
		t.Errorf("evidence %q", free)
	}
}
