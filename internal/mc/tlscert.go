package mc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"time"
)

// devCertLifetime stays under the 14 days that WebTransport's
// serverCertificateHashes accepts for a pinned, self-signed certificate.
const devCertLifetime = 13 * 24 * time.Hour

// serverCert is the WebTransport certificate and the hex SHA-256 of its DER
// encoding, which GC hands to clients for pinning.
type serverCert struct {
	cert       tls.Certificate
	sha256     string
	notAfter   time.Time
	selfSigned bool
}

// loadOrGenerateCert loads MC_TLS_CERT_FILE/MC_TLS_KEY_FILE, or generates a
// self-signed ECDSA P-256 certificate for host (plus localhost).
func loadOrGenerateCert(certFile, keyFile, host string) (*serverCert, error) {
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading TLS certificate %s / key %s: %w", certFile, keyFile, err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("parsing TLS certificate %s: %w", certFile, err)
		}
		c.Leaf = leaf
		return newServerCert(c, false), nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, fmt.Errorf("generating certificate serial: %w", err)
	}
	// Back-date a little for clock skew; the whole validity stays < 14 days.
	notBefore := time.Now().Add(-time.Hour).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "dark-tower-meeting-controller"},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(devCertLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	} else if host != "" && host != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing generated certificate: %w", err)
	}
	return newServerCert(tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, true), nil
}

func newServerCert(c tls.Certificate, selfSigned bool) *serverCert {
	return &serverCert{cert: c, sha256: CertSHA256(c.Certificate[0]), notAfter: c.Leaf.NotAfter, selfSigned: selfSigned}
}

// CertSHA256 is the lowercase hex SHA-256 of a DER certificate, the pin format
// GC advertises as webtransport_cert_sha256.
func CertSHA256(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}
