package probe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/webtransport-go"

	"github.com/darktower/devstack/internal/wtclient"
	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
)

// The mc section's checks. MC is ready only with Redis reachable: if Redis
// is down that check explains it and mc.ready is blocked, not a second
// failure. The health listeners and WebTransport endpoints MCs register are
// pod addresses, one per replica: only configured health_urls have Service
// names.
var mcChecks = []Spec{
	{ID: "mc.ready", Needs: []string{"gc.registration", "redis.reachable"}, Enabled: hasRegistry, Probe: mcReady,
		Targets: func(c *config.Config) []string {
			if len(c.MC.HealthURLs) == 0 {
				return []string{"health port " + strconv.Itoa(c.MC.HealthPort) + " of each registered MC"}
			}
			return config.RedactURLs(c.MC.HealthURLs)
		},
		Services: func(c *config.Config) []string { return dnsNames(c.MC.HealthURLs...) }},
	{ID: "mc.webtransport", Needs: []string{"gc.registration"}, Enabled: hasRegistry, Probe: mcWebTransport,
		Targets: func(*config.Config) []string { return []string{"each registered MC's WebTransport endpoint"} }},
}

// mcReady: every MC's /health/ready answers 200. The URLs come from the
// configuration or, with health_port, from the hosts the MCs registered.
func mcReady(ctx context.Context, t Target, log *slog.Logger) Result {
	urls := t.Cfg.MC.HealthURLs
	if len(urls) == 0 {
		for _, c := range t.Run.Controllers() {
			u, err := url.Parse(c.GrpcEndpoint)
			if err != nil || u.Hostname() == "" {
				return Failed(classify.At(c.Id, classify.Failf(classify.MCBadEndpoint, "grpc_endpoint %q has no host", c.GrpcEndpoint)), "")
			}
			urls = append(urls, "http://"+net.JoinHostPort(u.Hostname(), strconv.Itoa(t.Cfg.MC.HealthPort)))
		}
	}
	if len(urls) == 0 {
		return Pass("no MCs expected")
	}
	return each(ctx, urls, func(ctx context.Context, base string) (string, error) {
		u := strings.TrimRight(base, "/") + "/health/ready"
		code, body, err := httpGet(ctx, u)
		if err != nil {
			return "", classify.At(base, err)
		}
		obs := fmt.Sprintf("%d %s", code, truncate(body, 120))
		switch {
		case code == http.StatusOK:
			return obs, nil
		case code == http.StatusServiceUnavailable:
			return obs, classify.At(base, classify.Failf(classify.MCNotReady, "/health/ready answered 503: %s", truncate(body, 200)))
		}
		return obs, classify.At(base, classify.Failf(classify.MCHTTPStatus, "/health/ready answered %d", code))
	})
}

// mcWebTransport opens a QUIC connection to every live MC's advertised
// WebTransport endpoint, pinning the certificate to the SHA-256 it
// registered, and sends an Extended CONNECT for a meeting that does not
// exist. MC answers 404: that answer travelled over QUIC, TLS with the pinned
// certificate and HTTP/3 with WebTransport enabled, which is the whole path a
// client needs; only the meeting lookup said no. The verifier never creates a
// meeting (that would write to Redis), so 404 is the passing answer and an
// accepted session is a failure: MC would be hosting meetings nobody assigned.
func mcWebTransport(ctx context.Context, t Target, log *slog.Logger) Result {
	cs := t.Run.Controllers()
	if len(cs) == 0 {
		return Pass("no MCs expected")
	}
	var ids []string
	hashes := map[string]string{}
	endpoints := map[string]string{}
	for _, c := range cs {
		ids = append(ids, c.Id)
		hashes[c.Id] = c.WebtransportCertSha256
		endpoints[c.Id] = c.WebtransportEndpoint
	}
	return each(ctx, ids, func(ctx context.Context, id string) (string, error) {
		return webTransportHandshake(ctx, endpoints[id], hashes[id])
	})
}

func webTransportHandshake(ctx context.Context, endpoint, certHash string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", classify.At(endpoint, classify.Failf(classify.MCBadEndpoint, "webtransport_endpoint %q is not an https:// URL", endpoint))
	}
	pin, err := wtclient.ParsePin(certHash)
	if err != nil {
		return "", classify.At(u.Host, classify.Failf(classify.MCBadEndpoint, "webtransport_cert_sha256 %q: %v", certHash, err))
	}
	tr := wtclient.New(pin, 0)
	defer tr.Close()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	meeting := "verifier-probe-" + hex.EncodeToString(b)
	rsp, sess, err := tr.Dial(ctx, strings.TrimRight(endpoint, "/")+"/meetings/"+meeting, nil)
	if sess != nil {
		_ = sess.CloseWithError(0, "verifier probe")
		return "session accepted", classify.At(u.Host, classify.Failf(classify.MCWTAcceptedUnknown, "MC accepted a WebTransport session without a meeting token, for unknown meeting %s", meeting))
	}
	if rsp != nil {
		switch rsp.StatusCode {
		case http.StatusUnauthorized:
			return "QUIC+TLS (pinned certificate)+HTTP/3 WebTransport handshake ok; CONNECT without a meeting token refused with 401 as designed", nil
		case http.StatusNotFound:
			return "CONNECT answered 404", classify.At(u.Host, classify.Failf(classify.MCWTNoAuth, "CONNECT without a meeting token answered 404: MC looked the meeting up instead of refusing with 401"))
		}
		return fmt.Sprintf("CONNECT answered %d", rsp.StatusCode), classify.At(u.Host, classify.Failf(classify.MCWTRefused, "CONNECT without a meeting token answered %d, want 401", rsp.StatusCode))
	}
	if got := tr.Mismatch(); got != "" {
		return "certificate sha256 " + got, classify.At(u.Host, classify.Failf(classify.MCPinMismatch, "certificate sha256 %s, registered %s", got, certHash))
	}
	var rne *webtransport.RequirementsNotMetError
	if errors.As(err, &rne) {
		return "", classify.At(u.Host, classify.Failf(classify.MCWTProtocol, "%v", err))
	}
	var idle *quic.IdleTimeoutError
	var hs *quic.HandshakeTimeoutError
	if errors.As(err, &idle) || errors.As(err, &hs) || errors.Is(err, context.DeadlineExceeded) {
		return "", classify.At(u.Host, classify.Failf(classify.MCQUICTimeout, "no QUIC handshake: %v", err))
	}
	return "", classify.At(u.Host, err)
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
