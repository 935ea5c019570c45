// Package kubeapi starts a throwaway kube-apiserver backed by Debian's etcd,
// for tests: the verifier's Kubernetes probes (through internal/testsupport)
// and tools/validate's apply tests use this one launcher.
package kubeapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// EtcdBinary is Debian's etcd-server (apt-get install etcd-server).
const EtcdBinary = "/usr/bin/etcd"

// Server is kube-apiserver and its etcd on free loopback ports in a temporary
// directory: token-file auth, RBAC, a generated service-account key pair, the
// default admission plugins (PodSecurity among them). No controllers run, so
// objects keep exactly the status a test writes.
type Server struct {
	URL        string
	Kubeconfig string // a kubeconfig file for the admin user
	dir        string
	token      string
	procs      []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{} // closed when the process has exited
}

// Start starts etcd and the kube-apiserver binary at apiserverBin and waits
// until /readyz answers. Stop ends both and removes their directory.
func Start(apiserverBin string) (*Server, error) {
	for _, b := range []string{apiserverBin, EtcdBinary} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("%s missing: `make tools` builds kube-apiserver, `apt-get install etcd-server` gives etcd", b)
		}
	}
	dir, err := os.MkdirTemp("", "kubeapi-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, token: randomHex(16)}
	if err := s.start(apiserverBin); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(apiserverBin string) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if err := s.run("etcd", EtcdBinary,
		"--name=test", "--data-dir="+filepath.Join(s.dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=test="+peerURL, "--logger=zap", "--log-outputs=stderr",
		"--unsafe-no-fsync", // a throwaway store: durability is not what is tested
	); err != nil {
		return err
	}
	tokens := filepath.Join(s.dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(s.token+",test-admin,test-admin,system:masters\n"), 0o600); err != nil {
		return err
	}
	pub, priv, err := writeServiceAccountKeys(s.dir)
	if err != nil {
		return err
	}
	s.URL = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	if err := s.run("kube-apiserver", apiserverBin,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none", // a loopback advertise address is refused otherwise
		"--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+filepath.Join(s.dir, "certs"),
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pub,
		"--service-account-signing-key-file="+priv,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--enable-priority-and-fairness=false",
	); err != nil {
		return err
	}
	if err := s.waitReady(90 * time.Second); err != nil {
		return err
	}
	s.Kubeconfig = filepath.Join(s.dir, "kubeconfig")
	return os.WriteFile(s.Kubeconfig, []byte(s.kubeconfig()), 0o600)
}

// Config is an admin client configuration.
func (s *Server) Config() *rest.Config {
	return &rest.Config{
		Host:            s.URL,
		BearerToken:     s.token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}, // throwaway self-signed serving cert
		QPS:             200,
		Burst:           400,
	}
}

// Logs returns the tail of both processes' output.
func (s *Server) Logs() string {
	var b bytes.Buffer
	for _, p := range s.procs {
		fmt.Fprintf(&b, "--- %s ---\n%s\n", p.name, tail(p.log.String(), 2500))
	}
	return b.String()
}

// Stop ends both processes and removes the directory.
func (s *Server) Stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	s.procs = nil
	_ = os.RemoveAll(s.dir)
}

func (s *Server) run(name, bin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	buf := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	cmd.Dir = s.dir
	// Dies with the test binary even when it is killed before Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: buf, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.procs = append(s.procs, p)
	return nil
}

func (s *Server) kubeconfig() string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: test-admin
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: test-admin}
current-context: test
`, s.URL, s.token)
}

func (s *Server) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // throwaway self-signed serving cert
	}}
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		for _, p := range s.procs {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited: %s\n%s", p.name, p.cmd.ProcessState, s.Logs())
			default:
			}
		}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, s.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := client.Do(req)
		if err == nil {
			b := new(bytes.Buffer)
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, tail(b.String(), 500))
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver at %s not ready after %s: %s\n%s", s.URL, timeout, last, s.Logs())
}

func writeServiceAccountKeys(dir string) (pub, priv string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", err
	}
	priv, pub = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return "", "", err
	}
	return pub, priv, os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600)
}

// freePorts holds all n listeners until it has them, so the ports differ.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
