// Package wtclient dials MC's WebTransport endpoint the way a browser does
// with serverCertificateHashes: the dev certificate is self-signed, so the
// only trust is the SHA-256 pin GC advertises. The test client (internal/mc)
// and the verifier's mc.webtransport probe share it.
package wtclient

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/webtransport-go"
)

// ParsePin reads a certificate hash as MC registers it (hex, any case, colons
// allowed) or in base64.
func ParsePin(s string) ([]byte, error) {
	s = strings.TrimSpace(strings.ReplaceAll(s, ":", ""))
	if s == "" {
		return nil, errors.New("empty: no certificate hash")
	}
	if b, err := hex.DecodeString(s); err == nil && len(b) == sha256.Size {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == sha256.Size {
			return b, nil
		}
	}
	return nil, errors.New("expected a SHA-256 (64 hex characters) of the DER certificate")
}

// ErrPinMismatch is the handshake's error when the server's certificate is
// not the pinned one.
var ErrPinMismatch = errors.New("certificate does not match the pinned SHA-256")

// Transport is a WebTransport client transport that accepts only the
// certificate whose SHA-256 is pin. Mismatch reports the hash a refused
// server presented ("" when none was refused).
type Transport struct {
	*webtransport.Transport
	mismatch atomic.Pointer[string]
}

// New returns a Transport for pin; keepAlive 0 sends no keep-alives.
func New(pin []byte, keepAlive time.Duration) *Transport {
	t := &Transport{}
	t.Transport = &webtransport.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS13,
			// Verification is the pin below, not a CA chain.
			InsecureSkipVerify: true, //nolint:gosec // pinned in VerifyConnection
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("server sent no certificate")
				}
				sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
				if subtle.ConstantTimeCompare(sum[:], pin) != 1 {
					got := hex.EncodeToString(sum[:])
					t.mismatch.Store(&got)
					return ErrPinMismatch
				}
				return nil
			},
		},
		QUICConfig: &quic.Config{
			EnableDatagrams:                  true,
			EnableStreamResetPartialDelivery: true,
			KeepAlivePeriod:                  keepAlive,
		},
	}
	return t
}

// Mismatch is the SHA-256 (hex) of a certificate the pin refused, or "".
func (t *Transport) Mismatch() string {
	if p := t.mismatch.Load(); p != nil {
		return *p
	}
	return ""
}
