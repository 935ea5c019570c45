package auth

import (
	"context"
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
