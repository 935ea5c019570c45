package auth_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/auth"
)

// BenchmarkValidate measures the validator GC uses on every RPC: parse,
// key lookup in the cached JWKS, signature and claims checks.
func BenchmarkValidate(b *testing.B) {
	s := newSigner(b)
	v, err := auth.NewStaticValidator(s.JWKS())
	if err != nil {
		b.Fatal(err)
	}
	tok, _, _ := s.Sign("meeting-controller", "service.write.gc", auth.ServiceMeetingController, time.Hour)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Validate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateCached is the same validator as GC configures it, with
// validated tokens remembered: every call after the first is a cache hit,
// which is what GC sees from an MC heartbeating with one token for an hour.
func BenchmarkValidateCached(b *testing.B) {
	s := newSigner(b)
	v, err := auth.NewStaticValidator(s.JWKS())
	if err != nil {
		b.Fatal(err)
	}
	v.CacheValidTokens(time.Minute)
	tok, _, _ := s.Sign("meeting-controller", "service.write.gc", auth.ServiceMeetingController, time.Hour)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Validate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBareEd25519Verify is the floor: ed25519.Verify of the same
// token's signing input, with the key already in hand.
func BenchmarkBareEd25519Verify(b *testing.B) {
	s := newSigner(b)
	tok, _, _ := s.Sign("meeting-controller", "service.write.gc", auth.ServiceMeetingController, time.Hour)
	i := strings.LastIndexByte(tok, '.')
	msg, sig := []byte(tok[:i]), tok[i+1:]
	rawSig, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		b.Fatal(err)
	}
	pub := s.PublicKey()
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, rawSig) {
			b.Fatal("verify failed")
		}
	}
}
