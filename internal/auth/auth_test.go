package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/darktower/devstack/internal/auth"
)

func newSigner(t testing.TB) *auth.Signer {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	s, err := auth.NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignAndValidate(t *testing.T) {
	s := newSigner(t)
	v, err := auth.NewStaticValidator(s.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := s.Sign("meeting-controller", "service.write.gc", auth.ServiceMeetingController, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Validate(context.Background(), tok)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.Subject != "meeting-controller" || c.Issuer != auth.Issuer || c.ServiceType != auth.ServiceMeetingController || c.ID == "" {
		t.Fatalf("claims = %+v", c)
	}
	if !c.ExpiresAt.Time.Equal(exp) || c.ExpiresAt.Sub(c.IssuedAt.Time) != time.Hour {
		t.Fatalf("exp %v iat %v", c.ExpiresAt, c.IssuedAt)
	}
	if !(auth.Requirement{Scope: auth.ScopeWriteGC, ServiceTypes: []string{auth.ServiceMeetingController}}).Allows(c) {
		t.Fatal("requirement should allow MC token")
	}
	if (auth.Requirement{Scope: auth.ScopeReadGC}).Allows(c) {
		t.Fatal("MC token must not carry service.read.gc")
	}
	if (auth.Requirement{Scope: auth.ScopeWriteGC, ServiceTypes: []string{auth.ServiceVerifier}}).Allows(c) {
		t.Fatal("service type mismatch allowed")
	}
}

func TestJWKSShape(t *testing.T) {
	s := newSigner(t)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(s.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("keys = %v", set.Keys)
	}
	k := set.Keys[0]
	if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["kid"] != s.KeyID() || k["d"] != nil {
		t.Fatalf("jwk = %v", k)
	}
}

func TestValidateRefuses(t *testing.T) {
	s := newSigner(t)
	other := newSigner(t)
	v, _ := auth.NewStaticValidator(s.JWKS())
	ctx := context.Background()

	expired, _, _ := s.Sign("c", "service.read.gc", auth.ServiceVerifier, -time.Minute)
	unknownKey, _, _ := other.Sign("c", "service.read.gc", auth.ServiceVerifier, time.Hour)
	good, _, _ := s.Sign("c", "service.read.gc", auth.ServiceVerifier, time.Hour)
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "service.read.gc", "service.write.gc", 1))) + "." + parts[2]
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: auth.Issuer, Subject: "c", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	hs.Header["kid"] = s.KeyID()
	hsTok, _ := hs.SignedString([]byte("key"))
	none := parts[0] + "." + parts[1] + "."

	for name, tok := range map[string]string{"expired": expired, "unknown key": unknownKey, "tampered": tampered, "HS256": hsTok, "no signature": none, "garbage": "abc"} {
		if _, err := v.Validate(ctx, tok); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("%s: Validate = %v, want ErrInvalidToken", name, err)
		}
	}
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc", "Basic abc": "", "Bearer ": "", "": ""} {
		got, ok := auth.BearerToken(in)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q, %v", in, got, ok)
		}
	}
}

func TestNewSignerRejectsWrongSeed(t *testing.T) {
	if _, err := auth.NewSigner([]byte("short")); err == nil || !strings.Contains(err.Error(), "32-byte") {
		t.Fatalf("err = %v", err)
	}
}
