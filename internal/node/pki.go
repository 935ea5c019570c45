package node

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// The node's credentials: a CA, the API server's serving certificate (the CA
// bit lives only on the CA, so the controller-manager's trust bundle is
// valid), its client certificate for kubelets, the service-account key pair,
// and one bearer token per component (token file), so each acts as the user
// the built-in RBAC roles expect.
type credentials struct {
	tokens map[string]string // component -> token
}

// users maps each component to its user and groups in the API server's token file.
var users = []struct{ name, user, groups string }{
	{"admin", "dark-tower-admin", "system:masters"},
	{"kubelet", "system:node:" + NodeName, "system:nodes"},
	{"controller-manager", "system:kube-controller-manager", ""},
	{"scheduler", "system:kube-scheduler", ""},
	{"kube-proxy", "system:kube-proxy", ""},
	// kube-router's firewall watches pods, namespaces and policies and
	// updates its node; a throwaway node gives it a cluster-admin identity
	// instead of maintaining its RBAC.
	{"kube-router", "kube-router", "system:masters"},
}

func (n *Node) pki(elem string) string { return n.path("pki", elem) }

// ensurePKI creates what is missing and loads the tokens.
func (n *Node) ensurePKI() (*credentials, error) {
	if err := os.MkdirAll(n.path("pki"), 0o700); err != nil {
		return nil, err
	}
	ca, caKey, err := n.loadOrCreateCA()
	if err != nil {
		return nil, err
	}
	sans := []net.IP{net.ParseIP(APIServiceIP), net.ParseIP(n.IP), net.ParseIP("127.0.0.1")}
	dns := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"}
	// The serving certificate names the node's address, which can change
	// between boots: reissue it when it does not match.
	if err := n.ensureCert("apiserver", ca, caKey, pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth, sans, dns); err != nil {
		return nil, err
	}
	if err := n.ensureCert("apiserver-kubelet-client", ca, caKey,
		pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}}, x509.ExtKeyUsageClientAuth, nil, nil); err != nil {
		return nil, err
	}
	if _, err := os.Stat(n.pki("sa.key")); errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		if err := writeKey(n.pki("sa.key"), key); err != nil {
			return nil, err
		}
		pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(n.pki("sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
			return nil, err
		}
	}
	return n.ensureTokens()
}

func (n *Node) loadOrCreateCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if cert, key, err := loadPair(n.pki("ca")); err == nil {
		return cert, key, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "dark-tower-node-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	if err := writePair(n.pki("ca"), der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func (n *Node) ensureCert(name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, subject pkix.Name, usage x509.ExtKeyUsage, ips []net.IP, dns []string) error {
	if cert, _, err := loadPair(n.pki(name)); err == nil && coversIPs(cert, ips) {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  ips,
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	return writePair(n.pki(name), der, key)
}

func coversIPs(cert *x509.Certificate, ips []net.IP) bool {
	for _, want := range ips {
		found := false
		for _, got := range cert.IPAddresses {
			found = found || got.Equal(want)
		}
		if !found {
			return false
		}
	}
	return true
}

// ensureTokens writes the API server's token file once and reads it back.
func (n *Node) ensureTokens() (*credentials, error) {
	c := &credentials{tokens: map[string]string{}}
	path := n.pki("tokens.csv")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		var b []byte
		for _, u := range users {
			raw := make([]byte, 24)
			if _, err := rand.Read(raw); err != nil {
				return nil, err
			}
			b = fmt.Appendf(b, "%s,%s,%s,%q\n", hex.EncodeToString(raw), u.user, u.name, u.groups)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, err
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// token,user,uid,"group,group": the uid column holds the component's name.
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("node: %s: %w", path, err)
	}
	for _, r := range rows {
		if len(r) >= 3 {
			c.tokens[r[2]] = r[0]
		}
	}
	for _, u := range users {
		if c.tokens[u.name] == "" {
			return nil, fmt.Errorf("node: %s has no token for %s; delete it to regenerate (make node-down, then make node-up)", path, u.name)
		}
	}
	return c, nil
}

func serial() *big.Int {
	s, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return s
}

func writePair(base string, der []byte, key *ecdsa.PrivateKey) error {
	if err := writeKey(base+".key", key); err != nil {
		return err
	}
	return os.WriteFile(base+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func loadPair(base string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(base + ".crt")
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(base + ".key")
	if err != nil {
		return nil, nil, err
	}
	cblock, _ := pem.Decode(cb)
	kblock, _ := pem.Decode(kb)
	if cblock == nil || kblock == nil {
		return nil, nil, fmt.Errorf("node: %s.crt or .key is not PEM", base)
	}
	cert, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kblock.Bytes)
	return cert, key, err
}
