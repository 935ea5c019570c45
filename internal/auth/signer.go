package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Signer issues EdDSA tokens with one Ed25519 key. Every AC replica loads the
// same key, so all of them publish the same JWKS and accept each other's tokens.
type Signer struct {
	key  ed25519.PrivateKey
	kid  string
	jwks json.RawMessage
	now  func() time.Time
}

// NewSigner builds a signer from a 32-byte Ed25519 seed.
func NewSigner(seed []byte) (*Signer, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key: expected a %d-byte Ed25519 seed, got %d bytes", ed25519.SeedSize, len(seed))
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	kid := base64.RawURLEncoding.EncodeToString(sum[:12])

	jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.AlgEdDSA, USE: jwkset.UseSig},
	})
	if err != nil {
		return nil, fmt.Errorf("signing key: building JWK: %w", err)
	}
	store := jwkset.NewMemoryStorage()
	if err := store.KeyWrite(context.Background(), jwk); err != nil {
		return nil, fmt.Errorf("signing key: storing JWK: %w", err)
	}
	jwks, err := store.JSONPublic(context.Background())
	if err != nil {
		return nil, fmt.Errorf("signing key: rendering JWKS: %w", err)
	}
	return &Signer{key: key, kid: kid, jwks: jwks, now: time.Now}, nil
}

// KeyID is the kid of the signing key.
func (s *Signer) KeyID() string { return s.kid }

// JWKS is the public key set as served on /.well-known/jwks.json.
func (s *Signer) JWKS() json.RawMessage { return s.jwks }

// Sign issues a token for subject with the given scopes and lifetime.
func (s *Signer) Sign(subject, scope, serviceType string, ttl time.Duration) (string, time.Time, error) {
	return s.SignFor(subject, scope, serviceType, "", ttl)
}

// SignFor is Sign with an aud claim when audience is not empty.
func (s *Signer) SignFor(subject, scope, serviceType, audience string, ttl time.Duration) (string, time.Time, error) {
	return s.sign(subject, scope, serviceType, audience, "", ttl)
}

// SignMeeting issues a meeting token: participant as sub, the MC that hosts
// the meeting as aud, the meeting in meeting_id, scope meeting.session.
func (s *Signer) SignMeeting(participant, meetingID, controllerID string, ttl time.Duration) (string, time.Time, error) {
	return s.sign(participant, ScopeMeetingSession, "", controllerID, meetingID, ttl)
}

func (s *Signer) sign(subject, scope, serviceType, audience, meetingID string, ttl time.Duration) (string, time.Time, error) {
	now := s.now().Truncate(time.Second)
	exp := now.Add(ttl)
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        uuid.NewString(),
		},
		Scope:       scope,
		ServiceType: serviceType,
		MeetingID:   meetingID,
	}
	if audience != "" {
		claims.Audience = jwt.ClaimStrings{audience}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = s.kid
	signed, err := tok.SignedString(s.key)
	return signed, exp, err
}

// PublicKey is the verification key.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }
