package node

import (
	"slices"
	"testing"
)

func TestSaveFieldsKeepsQuotedComments(t *testing.T) {
	got := saveFields(`-A FORWARD -m comment --comment "kube-router netpol - 4IA2OSFRMVNDXBVV" -j KUBE-ROUTER-FORWARD`)
	want := []string{"-A", "FORWARD", "-m", "comment", "--comment", "kube-router netpol - 4IA2OSFRMVNDXBVV", "-j", "KUBE-ROUTER-FORWARD"}
	if !slices.Equal(got, want) {
		t.Fatalf("saveFields = %q, want %q", got, want)
	}
	if !jumpsToFirewall(got) {
		t.Error("a jump to KUBE-ROUTER-FORWARD is not recognised as kube-router's")
	}
	if jumpsToFirewall(saveFields(`-A FORWARD -j KUBE-FORWARD`)) {
		t.Error("kube-proxy's KUBE-FORWARD taken for kube-router's")
	}
}

func TestRestoreEmptiesTablesTheHostDidNotUse(t *testing.T) {
	saved := "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
	now := saved + "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\nCOMMIT\n"
	got := withEmptyTables(saved, now)
	want := saved + "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
	if got != want {
		t.Fatalf("withEmptyTables:\n%s\nwant:\n%s", got, want)
	}
	if got := withEmptyTables("", ""); got != "" {
		t.Fatalf("nothing saved, nothing now: %q", got)
	}
}
