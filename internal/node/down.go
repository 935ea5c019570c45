package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/darktower/devstack/internal/mounts"
)

// Down stops the node and undoes what Up changed on the host: pods first,
// through the kubelet, so the CNI releases their network namespaces and
// veths; then every process it started, by its pid file; then what may be
// left (mounts under the state directory, empty cni-* network namespaces,
// the bridge); then iptables, ipsets and sysctls as they were before Up.
// The state directory stays (its PKI and etcd data), except the mounts.
func (n *Node) Down(ctx context.Context) error {
	var errs []error
	p := n.procs()
	if _, ok := p.Running("kube-apiserver"); ok {
		if _, ok := p.Running("kubelet"); ok {
			n.removePods(ctx)
		}
	}
	// Reverse dependency order: nothing restarts what was just stopped.
	for _, name := range []string{"kube-controller-manager", "kube-scheduler", "kube-router", "kube-proxy", "kubelet", "dockerd"} {
		if err := p.Stop(name, 20*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if err := n.killContainers(ctx); err != nil {
		errs = append(errs, err)
	}
	for _, name := range []string{"containerd", "registry", "kube-apiserver", "etcd"} {
		if err := p.Stop(name, 20*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range p.Tracked() { // anything else a pid file names
		if err := p.Stop(name, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	// What a node up killed before it wrote their pid files started.
	if found, err := p.StopUnrecorded(10 * time.Second); len(found) > 0 || err != nil {
		fmt.Fprintf(n.Out, "node: stopped processes started but not recorded: %v\n", found)
		errs = append(errs, err)
	}
	if n.fileExists(n.path("kube-proxy", "config.yaml")) {
		// Its own clean-up of the iptables rules it wrote; restoreHost below
		// would catch them too, this also flushes its conntrack state.
		_ = exec.Command(n.bin("kube-proxy"), "--cleanup").Run()
	}
	errs = append(errs, n.unmountAll(), n.removeNetns(), n.removeBridge(), n.restoreHost(),
		// The pods' addresses: with the pods gone, none is in use.
		os.RemoveAll(n.path("cni", "ipam")))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	n.logf("stopped; nothing of the node is left running (state kept in %s)", n.Dir)
	return nil
}

// removePods deletes every pod while the kubelet still runs, after stopping
// the controllers that would recreate them, and waits for the kubelet to
// tear the sandboxes down.
func (n *Node) removePods(ctx context.Context) {
	for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
		_ = n.procs().Stop(name, 10*time.Second)
	}
	_, _ = n.kubectl(ctx, nil, "delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--wait=false")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, err := n.ctr(ctx, "-n", "k8s.io", "tasks", "ls", "-q")
		if err == nil && strings.TrimSpace(out) == "" {
			return
		}
		time.Sleep(time.Second)
	}
	n.logf("pods still running after 60 s; killing their containers")
}

// killContainers stops whatever tasks containerd still runs (pods the kubelet
// did not remove) and deletes them, so containerd can stop cleanly.
func (n *Node) killContainers(ctx context.Context) error {
	if _, ok := n.procs().Running("containerd"); !ok {
		return nil
	}
	out, err := n.ctr(ctx, "-n", "k8s.io", "tasks", "ls", "-q")
	if err != nil {
		return err
	}
	for _, id := range strings.Fields(out) {
		_, _ = n.ctr(ctx, "-n", "k8s.io", "tasks", "kill", "-a", "-s", "SIGKILL", id)
		_, _ = n.ctr(ctx, "-n", "k8s.io", "tasks", "delete", "-f", id)
	}
	return nil
}

func (n *Node) ctr(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", n.containerdSocket()}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("node: ctr %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// unmountAll unmounts everything mounted under the state directory (the
// kubelet's volumes, containerd's rootfs and shm mounts), deepest first.
func (n *Node) unmountAll() error {
	mounts, err := n.Mounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		if err := exec.Command("umount", m).Run(); err != nil {
			if out, err := exec.Command("umount", "-l", m).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("node: umount %s: %v: %s", m, err, strings.TrimSpace(string(out))))
			}
		}
	}
	return errors.Join(errs...)
}

// Mounts lists the mount points under the state directory and the Docker
// engine's data directory, deepest first.
func (n *Node) Mounts() ([]string, error) {
	out, err := mounts.Under(n.Dir, n.dockerData())
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return slices.Compact(out), nil
}

// NetworkNamespaces lists the pods' network namespaces containerd's CRI
// created (cni-<uuid> under /run/netns).
func NetworkNamespaces() []string {
	entries, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "cni-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// removeNetns deletes the pods' network namespaces that no process uses any
// more (their veths go with them). One still in use is not the node's to take.
func (n *Node) removeNetns() error {
	var errs []error
	for _, ns := range NetworkNamespaces() {
		if out, _ := exec.Command("ip", "netns", "pids", ns).Output(); strings.TrimSpace(string(out)) != "" {
			errs = append(errs, fmt.Errorf("node: network namespace %s is still used by pids %s", ns, strings.Fields(string(out))))
			continue
		}
		if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("node: ip netns delete %s: %v: %s", ns, err, strings.TrimSpace(string(out))))
		}
	}
	return errors.Join(errs...)
}

func (n *Node) removeBridge() error {
	if _, err := os.Stat("/sys/class/net/" + Bridge); err != nil {
		return nil
	}
	if out, err := exec.Command("ip", "link", "delete", Bridge).CombinedOutput(); err != nil {
		return fmt.Errorf("node: ip link delete %s: %v: %s", Bridge, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (n *Node) fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
