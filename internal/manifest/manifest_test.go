package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fixture = `
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: ns}
data:
  PASSWORD: czNjcjN0   # "s3cr3t"
stringData:
  USER: app
---
# an empty document, as Kustomize never writes but files may hold
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: ns}
data:
  REGION: local
  config.yaml: "a: 1\n"
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: ns, labels: {app: x}}
spec:
  replicas: 3
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers:
        - name: main
          image: example/app:1
          envFrom:
            - configMapRef: {name: settings}
              prefix: CFG_
          env:
            - {name: LATER, value: "$(DEFINED_BELOW)"}
            - {name: DEFINED_BELOW, value: below}
            - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: PASSWORD}}}
            - {name: DSN, value: "postgres://$(USER_NAME):$(PASSWORD)@db/$(CFG_REGION)"}
            - {name: USER_NAME, valueFrom: {secretKeyRef: {name: creds, key: USER}}}
            - {name: LITERAL, value: "$$(PASSWORD) costs $$5"}
            - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
            - {name: MISSING, valueFrom: {secretKeyRef: {name: creds, key: NO_SUCH_KEY}}}
            - {name: GONE, valueFrom: {configMapKeyRef: {name: not-rendered, key: K}}}
          volumeMounts:
            - {name: conf, mountPath: /etc/app}
            - {name: secret, mountPath: /run/secret}
      volumes:
        - name: conf
          configMap: {name: settings, items: [{key: config.yaml, path: sub/app.yaml}]}
        - name: secret
          secret: {secretName: creds}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: ns}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: example/once:1}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: ns}
spec:
  selector: {matchExpressions: [{key: app, operator: Exists}]}
  template:
    spec:
      containers: [{name: db, image: example/db:1}]
  volumeClaimTemplates:
    - metadata: {name: data}
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: ns}
`

func set(t *testing.T) Set {
	t.Helper()
	objs, err := Decode([]byte(fixture))
	if err != nil {
		t.Fatal(err)
	}
	return Set{Source: "fixture", Objects: objs}
}

func TestDecodeAndLookup(t *testing.T) {
	s := set(t)
	if len(s.Objects) != 6 {
		t.Fatalf("%d objects, want 6 (the empty document skipped)", len(s.Objects))
	}
	if o := s.Find("ConfigMap", "ns", "settings"); o == nil || o.GetName() != "settings" {
		t.Errorf("Find ConfigMap ns/settings = %v", o)
	}
	if s.Find("ConfigMap", "other", "settings") != nil {
		t.Error("Find matched another namespace")
	}
	if n := len(s.OfKind("Secret")); n != 1 {
		t.Errorf("OfKind(Secret) = %d objects", n)
	}
}

func TestData(t *testing.T) {
	s := set(t)
	sec, err := s.Data("Secret", "ns", "creds")
	if err != nil {
		t.Fatal(err)
	}
	if sec["PASSWORD"] != "s3cr3t" || sec["USER"] != "app" {
		t.Errorf("Secret data = %v, want data base64-decoded and stringData merged", sec)
	}
	cm, err := s.Data("ConfigMap", "ns", "settings")
	if err != nil || cm["REGION"] != "local" {
		t.Errorf("ConfigMap data = %v, %v", cm, err)
	}
	if d, err := s.Data("Secret", "ns", "absent"); d != nil || err != nil {
		t.Errorf("an absent Secret gives %v, %v; want nil, nil", d, err)
	}
	bad, _ := Decode([]byte("apiVersion: v1\nkind: Secret\nmetadata: {name: bad, namespace: ns}\ndata: {K: '%%%'}\n"))
	if _, err := (Set{Objects: bad}).Data("Secret", "ns", "bad"); err == nil || !strings.Contains(err.Error(), "Secret ns/bad") {
		t.Errorf("undecodable data: error %v, want one naming Secret ns/bad", err)
	}
	if _, err := s.Data("Service", "ns", "app"); err == nil {
		t.Error("Data of a Service: no error")
	}
}

func TestWorkloads(t *testing.T) {
	ws, err := set(t).Workloads()
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, w := range ws {
		refs = append(refs, w.Ref())
	}
	if got := strings.Join(refs, ", "); got != "Deployment ns/app, Job ns/once, StatefulSet ns/db" {
		t.Fatalf("workloads %s", got)
	}
	d, j, st := ws[0], ws[1], ws[2]
	if d.Replicas != 3 || d.Selector["app"] != "x" || d.Template.Spec.Containers[0].Name != "main" {
		t.Errorf("Deployment: replicas %d, selector %v", d.Replicas, d.Selector)
	}
	if j.Replicas != 1 || j.Selector != nil {
		t.Errorf("Job: replicas %d, selector %v; want 1, nil", j.Replicas, j.Selector)
	}
	if st.Selector != nil || st.LabelSelector == nil || len(st.ClaimTemplates) != 1 || st.ClaimTemplates[0] != "data" {
		t.Errorf("StatefulSet with matchExpressions: selector %v (want nil), label selector %v, claims %v", st.Selector, st.LabelSelector, st.ClaimTemplates)
	}
	typo, _ := Decode([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: typo, namespace: ns}\nspec: {replica: 2}\n"))
	if _, err := (Set{Objects: typo}).Workloads(); err == nil || !strings.Contains(err.Error(), "Deployment ns/typo") || !strings.Contains(err.Error(), "replica") {
		t.Errorf("an unknown field: error %v, want one naming Deployment ns/typo and the field", err)
	}
}

func TestResolveEnv(t *testing.T) {
	s := set(t)
	ws, err := s.Workloads()
	if err != nil {
		t.Fatal(err)
	}
	env, err := s.ResolveEnv("ns", ws[0].Template.Spec.Containers[0])
	want := map[string]string{
		"CFG_REGION":      "local", // envFrom with its prefix
		"CFG_config.yaml": "a: 1\n",
		"LATER":           "$(DEFINED_BELOW)", // only what is defined before is expanded
		"DEFINED_BELOW":   "below",
		"PASSWORD":        "s3cr3t",
		"DSN":             "postgres://$(USER_NAME):s3cr3t@db/local",
		"USER_NAME":       "app",
		"LITERAL":         "$(PASSWORD) costs $5", // $$ is a literal $
		"POD_IP":          FieldValues["status.podIP"],
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"MISSING", "GONE"} {
		if _, ok := env[k]; ok {
			t.Errorf("%s is set though it cannot be resolved", k)
		}
	}
	if len(env) != len(want) {
		t.Errorf("env has %d variables, want %d: %v", len(env), len(want), env)
	}
	if err == nil {
		t.Fatal("no error for the unresolvable references")
	}
	for _, part := range []string{`env MISSING: Secret ns/creds key "NO_SUCH_KEY" is not rendered`, `env GONE: ConfigMap ns/not-rendered key "K" is not rendered`} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not say %q", err, part)
		}
	}
}

func TestWriteVolumes(t *testing.T) {
	s := set(t)
	ws, err := s.Workloads()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mounts, err := s.WriteVolumes("ns", ws[0].Template.Spec, ws[0].Template.Spec.Containers[0], dir)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(mounts["/etc/app"], "sub", "app.yaml"): "a: 1\n", // only the listed item, at its path
		filepath.Join(mounts["/run/secret"], "PASSWORD"):     "s3cr3t",
		filepath.Join(mounts["/run/secret"], "USER"):         "app",
		filepath.Join(dir, "mnt", "conf", "sub", "app.yaml"): "a: 1\n",
	} {
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", path, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(mounts["/etc/app"], "REGION")); err == nil {
		t.Error("a key not among the volume's items was written")
	}
}

// TestRenderRunsKubectlOnce stands a script in for kubectl: the second render of a directory is
// served from the cache, decoded anew.
func TestRenderRunsKubectlOnce(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	kubectl := filepath.Join(dir, "kubectl")
	script := "#!/bin/sh\necho run >> " + count + "\n[ \"$1 $2\" = 'kustomize overlay' ] || exit 3\n" +
		"printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: a, namespace: ns}\\n'\n"
	if err := os.WriteFile(kubectl, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	first, err := Render(kubectl, dir, "overlay")
	if err != nil {
		t.Fatal(err)
	}
	first.Objects[0].SetName("changed")
	second, err := Render(kubectl, dir, "overlay")
	if err != nil {
		t.Fatal(err)
	}
	if second.Source != "overlay" || second.Find("ConfigMap", "ns", "a") == nil {
		t.Errorf("second render %+v: want a fresh ConfigMap ns/a", second)
	}
	if b, _ := os.ReadFile(count); strings.Count(string(b), "run") != 1 {
		t.Errorf("kubectl ran %d times, want once", strings.Count(string(b), "run"))
	}
	if _, err := Render(kubectl, dir, "other"); err == nil || !strings.Contains(err.Error(), "kustomize other") {
		t.Errorf("a failing kubectl: error %v, want one naming the command", err)
	}
}

func TestSplitImage(t *testing.T) {
	for _, c := range []struct{ in, name, rest string }{
		{"dark-tower/verifier", "dark-tower/verifier", ""},
		{"127.0.0.1:5001/dark-tower_gc:abc", "127.0.0.1:5001/dark-tower_gc", ":abc"},
		{"redis:7@sha256:00", "redis", ":7@sha256:00"},
		{"localhost:5000/redis@sha256:00", "localhost:5000/redis", "@sha256:00"},
	} {
		if name, rest := SplitImage(c.in); name != c.name || rest != c.rest {
			t.Errorf("SplitImage(%q) = %q, %q; want %q, %q", c.in, name, rest, c.name, c.rest)
		}
	}
}
