package node

import (
	"context"
	"fmt"
	"strings"
)

// Components lists the node's host processes in start order.
func (n *Node) Components() []string {
	var names []string
	for _, c := range n.all() {
		names = append(names, c.name)
	}
	return names
}

func (n *Node) all() []component {
	return []component{n.etcd(), n.apiserver(n.apiClient("")), n.registry(), n.controllerManager(), n.scheduler(),
		n.containerd(), n.dockerd(), n.kubelet(), n.kubeProxy(), n.kubeRouter()}
}

// Status prints each process and the node's condition; it returns an error
// naming what is not running.
func (n *Node) Status(ctx context.Context) error {
	var stopped []string
	for _, name := range n.Components() {
		if pid, ok := n.procs().Running(name); ok {
			fmt.Fprintf(n.Out, "  %-24s running (pid %d)\n", name, pid)
		} else {
			fmt.Fprintf(n.Out, "  %-24s stopped\n", name)
			stopped = append(stopped, name)
		}
	}
	if len(stopped) == len(n.Components()) {
		return fmt.Errorf("node: not running; start it with make node-up")
	}
	if out, err := n.kubectl(ctx, nil, "get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`); err == nil {
		fmt.Fprintf(n.Out, "  %-24s Ready=%s\n", "node/"+NodeName, strings.TrimSpace(out))
	}
	if len(stopped) > 0 {
		return fmt.Errorf("node: stopped: %s; make node-up starts them again (logs in %s)", strings.Join(stopped, ", "), n.path("logs"))
	}
	return nil
}
