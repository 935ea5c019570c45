package node

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"text/template"
	"time"
)

//go:embed addons.yaml
var addonsYAML string

var addons = template.Must(template.New("addons").Parse(addonsYAML))

// volumeCount is how many hostPath volumes the node offers: the stack claims
// two (Postgres, Redis) plus Loki's in overlays that keep it.
const volumeCount = 8

// bootstrap applies the add-ons and waits until the node is Ready and
// cluster DNS answers.
func (n *Node) bootstrap(ctx context.Context, refs imageRefs) error {
	var vols []string
	for i := range volumeCount {
		dir := n.path("volumes", fmt.Sprintf("pv-%d", i))
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o777); err != nil { // past the umask
			return err
		}
		vols = append(vols, dir)
	}
	var buf bytes.Buffer
	if err := addons.Execute(&buf, map[string]any{"CoreDNS": refs.CoreDNS, "Registry": Registry, "Volumes": vols, "NodeName": NodeName}); err != nil {
		return err
	}
	if _, err := n.kubectl(ctx, &buf, "apply", "--server-side", "--force-conflicts", "--field-manager", "dark-tower-node", "-f", "-"); err != nil {
		return err
	}
	n.logf("add-ons applied; waiting for the node and cluster DNS")
	if _, err := n.kubectl(ctx, nil, "wait", "--for=condition=Ready", "node/"+NodeName, "--timeout=180s"); err != nil {
		return err
	}
	if _, err := n.kubectl(ctx, nil, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s"); err != nil {
		return err
	}
	return nil
}

// kubectl runs the pinned kubectl as the administrator.
func (n *Node) kubectl(ctx context.Context, stdin *bytes.Buffer, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, n.bin("kubectl"), append([]string{"--kubeconfig", n.Kubeconfig()}, args...)...)
	if stdin != nil {
		c.Stdin = stdin
	}
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("node: kubectl %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}
