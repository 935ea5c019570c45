package node

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// kube-router's chains and ipsets. Its own --cleanup-config panics on these
// kernels (it probes IPVS, which they lack) after leaving its chains in place.
var firewallChainPrefixes = []string{"KUBE-ROUTER-", "KUBE-NWPLCY-", "KUBE-POD-FW-"}

func isFirewallChain(name string) bool {
	for _, p := range firewallChainPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// StopFirewall stops kube-router and removes what it enforces with: its
// iptables chains, the jumps to them and its ipsets. NetworkPolicy is then
// no longer enforced (the node tests prove the verifier notices); Up starts
// it again.
func (n *Node) StopFirewall() error {
	if err := n.procs().Stop("kube-router", 20*time.Second); err != nil {
		return err
	}
	rules, err := output("iptables-save", "-t", "filter")
	if err != nil {
		return err
	}
	var errs []error
	var chains []string
	for _, line := range strings.Split(rules, "\n") {
		f := saveFields(line)
		switch {
		case len(f) > 0 && strings.HasPrefix(f[0], ":") && isFirewallChain(f[0][1:]):
			chains = append(chains, f[0][1:])
		case len(f) > 3 && f[0] == "-A" && !isFirewallChain(f[1]) && jumpsToFirewall(f):
			// A jump from a chain of someone else's (INPUT, FORWARD, OUTPUT).
			if err := ipt(append([]string{"-D"}, f[1:]...)...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, c := range chains {
		if err := ipt("-F", c); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range chains {
		if err := ipt("-X", c); err != nil {
			errs = append(errs, err)
		}
	}
	sets, err := output("ipset", "list", "-n")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, s := range strings.Fields(sets) {
		if strings.HasPrefix(s, "KUBE-") || strings.HasPrefix(s, "inet6:KUBE-") {
			if out, err := exec.Command("ipset", "destroy", s).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("node: ipset destroy %s: %v: %s", s, err, strings.TrimSpace(string(out))))
			}
		}
	}
	return errors.Join(errs...)
}

func jumpsToFirewall(rule []string) bool {
	for i, w := range rule {
		if (w == "-j" || w == "-g") && i+1 < len(rule) && isFirewallChain(rule[i+1]) {
			return true
		}
	}
	return false
}

// saveFields splits an iptables-save line into arguments; comments are
// double-quoted and may hold spaces.
func saveFields(line string) []string {
	var out []string
	var cur strings.Builder
	quoted, inWord := false, false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\' && quoted && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			quoted, inWord = !quoted, true
		case c == ' ' && !quoted:
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}
