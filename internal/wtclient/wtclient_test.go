package wtclient

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestParsePin(t *testing.T) {
	sum := sha256.Sum256([]byte("certificate"))
	h := hex.EncodeToString(sum[:])
	var colons []string
	for i := 0; i < len(h); i += 2 {
		colons = append(colons, h[i:i+2])
	}
	for _, in := range []string{h, strings.ToUpper(h), " " + h + "\n", strings.Join(colons, ":"),
		base64.StdEncoding.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(sum[:])} {
		got, err := ParsePin(in)
		if err != nil || string(got) != string(sum[:]) {
			t.Errorf("ParsePin(%q) = %x, %v; want %x", in, got, err, sum)
		}
	}
	for _, in := range []string{"", "not-hex", h[:62], h + "00"} {
		if got, err := ParsePin(in); err == nil {
			t.Errorf("ParsePin(%q) = %x, want an error", in, got)
		}
	}
}
