package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/secret"
	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
)

// The ac section's checks. AC reads its clients from Postgres: with Postgres
// down, postgres.reachable says so and the token is blocked.
var acChecks = []Spec{
	{ID: "ac.jwks", Enabled: hasAC, Targets: acURLs, Vars: acVars, Services: acNames, Probe: acJWKS},
	{ID: "ac.token", Needs: []string{"ac.jwks", "postgres.reachable"},
		Enabled: hasAC, Vars: acVars, Services: acNames, Probe: acToken,
		Targets: func(c *config.Config) []string { return acURLs(c)[:1] }},
}

func hasAC(c *config.Config) bool       { return c.AC != nil }
func acURLs(c *config.Config) []string  { return config.RedactURLs(c.AC.URLs) }
func acNames(c *config.Config) []string { return dnsNames(c.AC.URLs...) }
func acVars(c *config.Config) map[string]string {
	return map[string]string{"ref": c.AC.ClientSecret.ShellRef()}
}

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Kid string `json:"kid"`
	X   string `json:"x"`
	D   string `json:"d"`
}

// acJWKS: every AC replica serves the same set of Ed25519 public keys.
func acJWKS(ctx context.Context, t Target, log *slog.Logger) Result {
	urls := t.Cfg.AC.URLs
	sets := make([]string, len(urls))
	bodies := make([][]byte, len(urls))
	res := each(ctx, urls, func(ctx context.Context, base string) (string, error) {
		u := strings.TrimRight(base, "/") + auth.JWKSPath
		code, body, err := httpGet(ctx, u)
		if err != nil {
			return "", classify.At(u, err)
		}
		if code != http.StatusOK {
			return fmt.Sprintf("HTTP %d", code), classify.At(base, classify.Failf(classify.ACHTTPStatus, "%s answered %d", u, code))
		}
		var doc struct {
			Keys []jwk `json:"keys"`
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil || len(doc.Keys) == 0 {
			return "no keys", classify.At(u, classify.Failf(classify.ACJWKSInvalid, "%s is not a JWKS with keys", u))
		}
		var ids []string
		for _, k := range doc.Keys {
			if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Kid == "" || k.X == "" {
				return "bad key", classify.At(u, classify.Failf(classify.ACJWKSInvalid, "key %q is kty=%s crv=%s; want OKP Ed25519 with kid", k.Kid, k.Kty, k.Crv))
			}
			if k.D != "" {
				return "private key published", classify.At(u, classify.Failf(classify.ACJWKSInvalid, "key %q publishes its private part", k.Kid))
			}
			ids = append(ids, k.Kid+"="+k.X)
		}
		slices.Sort(ids)
		i := slices.Index(urls, base)
		sets[i], bodies[i] = strings.Join(ids, ","), []byte(body)
		kids := make([]string, len(doc.Keys))
		for j, k := range doc.Keys {
			kids[j] = k.Kid
		}
		return fmt.Sprintf("%d Ed25519 key(s), kid %s", len(doc.Keys), strings.Join(kids, ",")), nil
	})
	if res.Err != nil {
		return res
	}
	for i := 1; i < len(sets); i++ {
		if sets[i] != sets[0] {
			return Failed(classify.At(strings.Join(urls, " "), classify.Failf(classify.ACJWKSMismatch, "%s and %s publish different keys", urls[0], urls[i])), res.Observed)
		}
	}
	t.Run.setJWKS(bodies[0])
	return res
}

// acToken: the verifier's own client gets a token that validates against the
// JWKS and carries its scope and service type.
func acToken(ctx context.Context, t Target, log *slog.Logger) Result {
	a := t.Cfg.AC
	base := strings.TrimRight(a.URLs[0], "/")
	cc := clientcredentials.Config{
		ClientID:     a.ClientID,
		ClientSecret: a.ClientSecret.Value.Reveal(),
		TokenURL:     base + auth.TokenPath,
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, httpClient))
	if err != nil {
		return Failed(classify.At(base, err), "")
	}
	access := secret.New(tok.AccessToken)
	jwks := t.Run.getJWKS()
	if jwks == nil {
		return Failed(classify.At(base, classify.Failf(classify.ACTokenInvalid, "no JWKS from ac.jwks to validate against")), "")
	}
	v, err := auth.NewStaticValidator(jwks)
	if err != nil {
		return Failed(classify.At(base, classify.Failf(classify.ACJWKSInvalid, "JWKS: %v", err)), "")
	}
	claims, err := v.Validate(ctx, access.Reveal())
	if err != nil {
		return Failed(classify.At(base, classify.Failf(classify.ACTokenInvalid, "the token does not validate: %v", err)), "token issued")
	}
	obs := fmt.Sprintf("token for %s, scope %q, service_type %q, expires in %s", claims.Subject, claims.Scope, claims.ServiceType,
		time.Until(claims.ExpiresAt.Time).Round(time.Second))
	switch {
	case claims.Subject != a.ClientID:
		return Failed(classify.At(base, classify.Failf(classify.ACTokenClaims, "sub is %q, want %q", claims.Subject, a.ClientID)), obs)
	case !claims.HasScope(auth.ScopeReadGC):
		return Failed(classify.At(base, classify.Failf(classify.ACTokenClaims, "scope %q lacks %s", claims.Scope, auth.ScopeReadGC)), obs)
	case claims.ServiceType != auth.ServiceVerifier:
		return Failed(classify.At(base, classify.Failf(classify.ACTokenClaims, "service_type is %q, want %q", claims.ServiceType, auth.ServiceVerifier)), obs)
	}
	t.Run.setToken(access)
	return Pass("%s", obs)
}
