package testsupport

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// EtcdBinary is Debian's etcd-server (apt-get install etcd-server).
const EtcdBinary = "/usr/bin/etcd"

// KubeAPI is a throwaway kube-apiserver (the pinned bin/kube-apiserver) backed
// by Debian's etcd, both on free loopback ports in a temporary directory:
// token-file auth, RBAC, a generated service-account key pair. No controllers
// run, so objects keep exactly the status a test writes.
type KubeAPI struct {
	URL        string
	Kubeconfig string // a kubeconfig file for the admin user (verifier's kubeconfig: key)
	token      string
	etcd, api  *External
}

// KubeAPIServerBinary is $KUBE_APISERVER_BIN, else bin/kube-apiserver of the module.
func KubeAPIServerBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KUBE_APISERVER_BIN"); p != "" {
		return p
	}
	return filepath.Join(ModuleRoot(t), "bin", "kube-apiserver")
}

// StartKubeAPI starts etcd and kube-apiserver and waits until /readyz answers.
// A missing binary fails the test: the servers are what is being tested against.
func StartKubeAPI(t testing.TB) *KubeAPI {
	t.Helper()
	bin := KubeAPIServerBinary(t)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s missing: run `make tools` (builds the pinned kube-apiserver into bin/)", bin)
	}
	if _, err := os.Stat(EtcdBinary); err != nil {
		t.Fatalf("%s missing: apt-get install etcd-server", EtcdBinary)
	}
	dir := t.TempDir()
	k := &KubeAPI{token: RandomToken(t, 16)}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(FreePort(t))
	peerURL := "http://127.0.0.1:" + strconv.Itoa(FreePort(t))
	k.etcd = StartExternal(t, "etcd", EtcdBinary, []string{
		"--name=test", "--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=test=" + peerURL, "--logger=zap", "--log-outputs=stderr",
		"--unsafe-no-fsync", // a throwaway store: durability is not what is tested
	}, nil)
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(k.token+",test-admin,test-admin,system:masters\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, priv := writeServiceAccountKeys(t, dir)
	port := FreePort(t)
	k.URL = "https://127.0.0.1:" + strconv.Itoa(port)
	k.api = StartExternal(t, "kube-apiserver", bin, []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none", // a loopback advertise address is refused otherwise
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pub,
		"--service-account-signing-key-file=" + priv,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--enable-priority-and-fairness=false",
	}, nil)
	if err := k.waitReady(90 * time.Second); err != nil {
		t.Fatalf("%v\n--- etcd ---\n%s\n--- kube-apiserver ---\n%s", err, tailString(k.etcd.Logs(), 2000), tailString(k.api.Logs(), 4000))
	}
	k.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(k.Kubeconfig, []byte(k.kubeconfig()), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// Config is an admin client configuration.
func (k *KubeAPI) Config() *rest.Config {
	return &rest.Config{
		Host:            k.URL,
		BearerToken:     k.token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}, // throwaway self-signed serving cert
		QPS:             200,
		Burst:           400,
	}
}

func (k *KubeAPI) kubeconfig() string {
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
`, k.URL, k.token)
}

func (k *KubeAPI) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, k.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+k.token)
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, tailString(string(b), 500))
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver at %s not ready after %s: %s", k.URL, timeout, last)
}

func writeServiceAccountKeys(t testing.TB, dir string) (pub, priv string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
