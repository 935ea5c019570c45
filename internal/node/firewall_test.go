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
