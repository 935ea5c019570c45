package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/grpc/credentials"

	"github.com/darktower/devstack/internal/secret"
)

// TokenPath is AC's token endpoint, relative to its base URL.
const TokenPath = "/api/v1/auth/service/token"

// JWKSPath is AC's public key set, relative to its base URL.
const JWKSPath = "/.well-known/jwks.json"

// TokenSource returns a cached, auto-renewing client-credentials token source
// for AC at baseURL. Tokens are renewed shortly before they expire.
func TokenSource(ctx context.Context, baseURL, clientID string, clientSecret secret.Value) oauth2.TokenSource {
	return tokenSource(ctx, baseURL, clientID, clientSecret, nil)
}

// AudienceTokenSource is TokenSource for tokens bound to one audience (an
// MC's id): AC puts it in aud and caps the lifetime at AudienceTTL.
func AudienceTokenSource(ctx context.Context, baseURL, clientID string, clientSecret secret.Value, audience string) oauth2.TokenSource {
	return tokenSource(ctx, baseURL, clientID, clientSecret, url.Values{"audience": {audience}})
}

func tokenSource(ctx context.Context, baseURL, clientID string, clientSecret secret.Value, params url.Values) oauth2.TokenSource {
	cfg := clientcredentials.Config{
		ClientID:       clientID,
		ClientSecret:   clientSecret.Reveal(),
		TokenURL:       baseURL + TokenPath,
		AuthStyle:      oauth2.AuthStyleInHeader,
		EndpointParams: params,
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: 10 * time.Second})
	return cfg.TokenSource(ctx)
}

// PerRPC turns a token source into gRPC per-call credentials. Inside the
// cluster traffic is plaintext, so it does not demand transport security
// (grpc's own oauth.TokenSource does).
func PerRPC(ts oauth2.TokenSource) credentials.PerRPCCredentials { return perRPC{ts} }

type perRPC struct{ ts oauth2.TokenSource }

func (p perRPC) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	t, err := p.ts.Token()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + t.AccessToken}, nil
}

func (perRPC) RequireTransportSecurity() bool { return false }

// RequestMeetingToken asks AC at baseURL, with the caller's token from ts
// (GC's), for a meeting token bound to meeting, participant and the MC that
// hosts the meeting. The error never contains a token.
func RequestMeetingToken(ctx context.Context, baseURL string, ts oauth2.TokenSource, meetingID, participantID, controllerID string) (string, error) {
	t, err := ts.Token()
	if err != nil {
		return "", fmt.Errorf("GC's token from AC: %w", err)
	}
	body, _ := json.Marshal(map[string]string{"meeting_id": meetingID, "participant_id": participantID, "controller_id": controllerID})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+MeetingTokenPath, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+t.AccessToken)
	resp, err := meetingTokenClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"meeting_token"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return "", fmt.Errorf("AC answered %s to the meeting token request", resp.Status)
	}
	if resp.StatusCode != http.StatusOK || out.Token == "" {
		return "", fmt.Errorf("AC answered %s to the meeting token request: %s", resp.Status, out.Error)
	}
	return out.Token, nil
}

var meetingTokenClient = &http.Client{Timeout: 5 * time.Second}
