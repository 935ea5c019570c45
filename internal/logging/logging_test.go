package logging

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBound(t *testing.T) {
	if got := Bound("short"); got != "short" {
		t.Fatalf("Bound(short) = %q", got)
	}
	// 255 ASCII bytes then 2-byte runes: the cut must not split a rune.
	long := strings.Repeat("a", MaxValue-1) + strings.Repeat("é", 1000)
	got := Bound(long)
	if len(got) > MaxValue+32 || !utf8.ValidString(got) || !strings.HasSuffix(got, "...(2255 bytes)") {
		t.Fatalf("Bound(long) = %d bytes, valid UTF-8 %v, suffix %q", len(got), utf8.ValidString(got), got[len(got)-20:])
	}
}
