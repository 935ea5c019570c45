package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// The host settings the node changes, each restored by Down to what it was.
var sysctls = []string{
	"net/ipv4/ip_forward",
	// Bridged pod traffic must pass iptables, or replies from Services on the
	// bridge are lost (0 by default on these hosts).
	"net/bridge/bridge-nf-call-iptables",
	// kube-proxy sets it so NodePorts answer on 127.0.0.1.
	"net/ipv4/conf/all/route_localnet",
}

// hostState is what the host had before the first Up, kept in host.json.
type hostState struct {
	Sysctls  map[string]string `json:"sysctls"`
	Iptables string            `json:"iptables"`  // iptables-save
	Ip6table string            `json:"ip6tables"` // ip6tables-save
	IPSets   []string          `json:"ipsets"`
}

func (n *Node) hostStateFile() string { return n.path("host.json") }

// saveHostState records the host's settings once: a second Up, or an Up after
// a crash, keeps the first record, which is what Down must return to.
func (n *Node) saveHostState() error {
	if _, err := os.Stat(n.hostStateFile()); err == nil {
		return nil
	}
	s := hostState{Sysctls: map[string]string{}}
	for _, k := range sysctls {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			return fmt.Errorf("node: reading %s: %w", k, err)
		}
		s.Sysctls[k] = strings.TrimSpace(string(b))
	}
	var err error
	if s.Iptables, err = output("iptables-save"); err != nil {
		return err
	}
	if s.Ip6table, err = output("ip6tables-save"); err != nil {
		return err
	}
	sets, err := output("ipset", "list", "-n")
	if err != nil {
		return err
	}
	s.IPSets = strings.Fields(sets)
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(n.hostStateFile(), string(b), 0o600)
}

// The node's own forwarding rules, in a chain of its own: pod traffic that
// would leave through any interface but the pod bridge is refused (nothing
// routes pod addresses off the machine), and traffic within the bridge is
// accepted at the end of FORWARD, after kube-router's policy chains, in case
// the host's FORWARD policy is DROP.
const forwardChain = "DT-NODE-FORWARD"

func (n *Node) prepareHost() error {
	for _, kv := range [][2]string{{"net/ipv4/ip_forward", "1"}, {"net/bridge/bridge-nf-call-iptables", "1"}} {
		if err := os.WriteFile("/proc/sys/"+kv[0], []byte(kv[1]), 0o644); err != nil {
			return fmt.Errorf("node: setting %s: %w", kv[0], err)
		}
	}
	if err := ipt("-n", "-L", forwardChain); err == nil {
		return nil // already in place
	}
	for _, args := range [][]string{
		{"-N", forwardChain},
		{"-A", forwardChain, "-s", PodCIDR, "!", "-o", Bridge, "-j", "REJECT"},
		{"-I", "FORWARD", "1", "-j", forwardChain},
		{"-A", "FORWARD", "-i", Bridge, "-o", Bridge, "-j", "ACCEPT"},
	} {
		if err := ipt(args...); err != nil {
			return err
		}
	}
	return nil
}

// restoreHost puts back what saveHostState recorded: iptables and ip6tables
// as they were (which removes every chain kube-proxy, the kubelet,
// kube-router and the node added), the ipsets that did not exist, the sysctls.
func (n *Node) restoreHost() error {
	b, err := os.ReadFile(n.hostStateFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var s hostState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("node: %s: %w", n.hostStateFile(), err)
	}
	var errs []error
	for _, fam := range []struct{ save, restore, rules string }{
		{"iptables-save", "iptables-restore", s.Iptables},
		{"ip6tables-save", "ip6tables-restore", s.Ip6table},
	} {
		now, err := output(fam.save)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c := exec.Command(fam.restore)
		c.Stdin = strings.NewReader(withEmptyTables(fam.rules, now))
		if out, err := c.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("node: %s: %v: %s", fam.restore, err, bytes.TrimSpace(out)))
		}
	}
	had := map[string]bool{}
	for _, s := range s.IPSets {
		had[s] = true
	}
	if sets, err := output("ipset", "list", "-n"); err == nil {
		for _, set := range strings.Fields(sets) {
			if !had[set] {
				if out, err := exec.Command("ipset", "destroy", set).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("node: ipset destroy %s: %v: %s", set, err, bytes.TrimSpace(out)))
				}
			}
		}
	}
	for k, v := range s.Sysctls {
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("node: restoring %s: %w", k, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.Remove(n.hostStateFile())
}

// builtinChains are each table's own chains, which a restore keeps.
var builtinChains = map[string][]string{
	"filter":   {"INPUT", "FORWARD", "OUTPUT"},
	"nat":      {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle":   {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":      {"PREROUTING", "OUTPUT"},
	"security": {"INPUT", "FORWARD", "OUTPUT"},
}

// withEmptyTables is a restore of saved that also empties every table now
// holds and saved does not: iptables-save prints only the tables in use, and
// a restore leaves alone the tables it is not given.
func withEmptyTables(saved, now string) string {
	tables := func(rules string) map[string]bool {
		t := map[string]bool{}
		for _, line := range strings.Split(rules, "\n") {
			if name, ok := strings.CutPrefix(line, "*"); ok {
				t[strings.TrimSpace(name)] = true
			}
		}
		return t
	}
	had, has := tables(saved), tables(now)
	var b strings.Builder
	b.WriteString(saved)
	for table := range has {
		if had[table] {
			continue
		}
		fmt.Fprintf(&b, "*%s\n", table)
		for _, c := range builtinChains[table] {
			fmt.Fprintf(&b, ":%s ACCEPT [0:0]\n", c)
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

func ipt(args ...string) error {
	if out, err := exec.Command("iptables", append([]string{"-w"}, args...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("node: iptables %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func output(name string, args ...string) (string, error) {
	var stderr bytes.Buffer
	c := exec.Command(name, args...)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return "", fmt.Errorf("node: %s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return string(out), nil
}
