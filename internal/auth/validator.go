package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// ErrInvalidToken wraps every reason a token is refused.
var ErrInvalidToken = errors.New("invalid token")

// Validator checks tokens against AC's JWKS. Keys are cached and refreshed in
// the background; an unknown kid triggers a rate-limited refresh, so a key
// rotation is picked up without fetching per request.
type Validator struct {
	kf     keyfunc.Keyfunc
	parser *jwt.Parser
	cache  *tokenCache // nil unless CacheValidTokens was called
}

// NewValidator starts fetching jwksURL. It does not fail when AC is not up
// yet: Ready reports when keys have arrived.
func NewValidator(ctx context.Context, jwksURL string, log *slog.Logger) (*Validator, error) {
	noErr := true
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURL}, keyfunc.Override{
		Client:                    &http.Client{Timeout: 5 * time.Second},
		HTTPTimeout:               5 * time.Second,
		NoErrorReturnFirstHTTPReq: &noErr,
		RefreshInterval:           5 * time.Minute,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(5*time.Second), 1),
		// A token with an unknown kid triggers at most one refresh per 5 s.
		// jwkset bounds the wait for the limiter and the refresh's fetch with
		// this one timeout, so it must fit a fetch (1 ms made every refresh
		// fail, and a validator whose first fetch failed waited for the
		// 5-minute refresh). A caller whose turn is further away is refused
		// at once (rate.Limiter.Wait knows the delay up front), so at most
		// one waits per refresh.
		RateLimitWaitMax: 3 * time.Second,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				log.Warn("JWKS refresh failed", "url", u, "error", err)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", jwksURL, err)
	}
	return newValidator(kf), nil
}

// NewStaticValidator validates against a fixed JWKS document (tests, benchmarks).
func NewStaticValidator(jwks []byte) (*Validator, error) {
	kf, err := keyfunc.NewJWKSetJSON(jwks)
	if err != nil {
		return nil, err
	}
	return newValidator(kf), nil
}

func newValidator(kf keyfunc.Keyfunc) *Validator {
	return &Validator{
		kf: kf,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithIssuer(Issuer),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(5*time.Second),
		),
	}
}

// Ready reports whether at least one key has been fetched.
func (v *Validator) Ready(ctx context.Context) error {
	keys, err := v.kf.Storage().KeyReadAll(ctx)
	if err != nil {
		return fmt.Errorf("JWKS: %w", err)
	}
	if len(keys) == 0 {
		// The first fetch failed (in a cluster AC often starts after GC and MC)
		// and the periodic refresh is minutes away: asking for a key nobody
		// has refreshes now, rate limited like any token with an unknown kid.
		_, _ = v.kf.Storage().KeyRead(ctx, "readiness-probe")
		if keys, err = v.kf.Storage().KeyReadAll(ctx); err == nil && len(keys) > 0 {
			return nil
		}
		return errors.New("JWKS: no keys fetched yet")
	}
	return nil
}

// Validate parses and verifies a token and returns its claims.
func (v *Validator) Validate(ctx context.Context, token string) (*Claims, error) {
	if v.cache != nil {
		if c, ok := v.cache.get(token, time.Now()); ok {
			return c, nil
		}
	}
	var c Claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.kf.KeyfuncCtx(ctx)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	if v.cache != nil {
		v.cache.put(token, &c, time.Now())
	}
	return &c, nil
}
