package testsupport

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/auth"
)

// Issuer signs tokens with a fresh key and serves its JWKS over HTTP, for
// tests of a single service. End-to-end tests use the real AC instead.
type Issuer struct {
	Signer  *auth.Signer
	JWKSURL string
}

// NewIssuer starts a JWKS server for a new random key, closed at test end.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	s, err := auth.NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.JWKS())
	}))
	t.Cleanup(srv.Close)
	return &Issuer{Signer: s, JWKSURL: srv.URL + auth.JWKSPath}
}

// Token signs a one-hour token for a client.
func (i *Issuer) Token(t testing.TB, subject, scope, serviceType string) string {
	t.Helper()
	tok, _, err := i.Signer.Sign(subject, scope, serviceType, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
