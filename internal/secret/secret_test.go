package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestValueNeverPrints(t *testing.T) {
	const raw = "hunter2-very-secret"
	v := New(raw)
	if v.Reveal() != raw {
		t.Fatalf("Reveal() = %q", v.Reveal())
	}
	type holder struct {
		Password Value
	}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		out = append(out, fmt.Sprintf(verb, v), fmt.Sprintf(verb, holder{v}))
	}
	j, err := json.Marshal(holder{v})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(j))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "password", v, "h", holder{v})
	out = append(out, buf.String())
	for _, s := range out {
		if strings.Contains(s, raw) || strings.Contains(s, fmt.Sprintf("%x", raw)) {
			t.Errorf("secret leaked in %q", s)
		}
		if !strings.Contains(s, "REDACTED") {
			t.Errorf("output %q does not say REDACTED", s)
		}
	}
}
