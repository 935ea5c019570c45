package mc

import (
	"crypto/x509"
	"encoding/pem"
)

// DevCertificate generates the certificate New would, as PEM files' contents.
func DevCertificate(cfg Config) (cert *x509.Certificate, certPEM, keyPEM []byte, err error) {
	c, err := loadOrGenerateCert("", "", advertisedHost(cfg.WTAdvertise))
	if err != nil {
		return nil, nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.cert.PrivateKey)
	if err != nil {
		return nil, nil, nil, err
	}
	return c.cert.Leaf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
