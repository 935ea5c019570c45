package validate

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The node overlays (docs/kind.md, "The node").
const (
	NodeOverlay    = "infra/overlays/node"
	NodeDatastores = "infra/overlays/node/datastores"
	KindDatastores = "infra/overlays/kind/datastores"
)

// nodeLeftOut are the components the node overlay leaves out (none of them is built here).
var nodeLeftOut = map[string]bool{"grafana": true, "loki": true, "alloy": true}

// nodeImages maps each third-party image of the Kind overlay (name without
// tag or digest) to the node's local-registry image that stands for it.
var nodeImages = map[string]string{
	"postgres":                 "127.0.0.1:5001/darktower-base/postgres:15",
	"redis":                    "127.0.0.1:5001/darktower-base/redis:7",
	"prom/prometheus":          "127.0.0.1:5001/darktower-base/prometheus:3.7.3",
	"oliver006/redis_exporter": "127.0.0.1:5001/darktower-base/redis-exporter:1.45",
	"quay.io/prometheuscommunity/postgres-exporter": "127.0.0.1:5001/darktower-base/postgres-exporter:0.11",
}

// TestNodeOverlayIsKindOverlay holds the node overlays to the Kind overlays:
// the same objects, identical but for third-party image references, without
// Grafana, Loki and Alloy, and with a verifier configuration that expects
// exactly the workloads the node runs.
func TestNodeOverlayIsKindOverlay(t *testing.T) {
	for _, pair := range [][2]string{{KindOverlay, NodeOverlay}, {KindDatastores, NodeDatastores}} {
		kind, node := Render(t, pair[0]), Render(t, pair[1])
		t.Run(pair[1], func(t *testing.T) {
			want := map[string]*unstructured.Unstructured{}
			for _, o := range kind.Objects {
				if nodeLeftOut[o.GetLabels()["app.kubernetes.io/name"]] {
					continue
				}
				want[nodeObjKey(o)] = nodeVersion(t, o)
			}
			got := map[string]*unstructured.Unstructured{}
			for _, o := range node.Objects {
				got[nodeObjKey(o)] = o
			}
			for k, w := range want {
				g, ok := got[k]
				if !ok {
					t.Errorf("%s: in %s, missing from %s", k, pair[0], pair[1])
					continue
				}
				if k == "ConfigMap dark-tower/verifier-config" {
					compareVerifierConfig(t, w, g)
					continue
				}
				if !reflect.DeepEqual(w.Object, g.Object) {
					t.Errorf("%s differs from %s's beyond the image references:\nkind (images rewritten): %v\nnode: %v", k, pair[0], w.Object, g.Object)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("%s: in %s only", k, pair[1])
				}
			}
		})
	}
}

func nodeObjKey(o *unstructured.Unstructured) string {
	return objKey(o.GetKind(), o.GetNamespace(), o.GetName())
}

// nodeVersion is a copy of a Kind object with its third-party images
// replaced by the node's; an image the mapping does not know must be ours
// (dark-tower/*, built by Skaffold).
func nodeVersion(t *testing.T, o *unstructured.Unstructured) *unstructured.Unstructured {
	c := o.DeepCopy()
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "image" {
					name := s
					if i := strings.IndexByte(name, '@'); i >= 0 {
						name = name[:i]
					}
					if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
						name = name[:i]
					}
					if repl, ok := nodeImages[name]; ok {
						v[k] = repl
					} else if !strings.HasPrefix(s, "dark-tower/") {
						t.Errorf("%s: image %s has no node counterpart; add it to infra/overlays/node/images and nodeImages", nodeObjKey(o), s)
					}
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(c.Object)
	return c
}

// compareVerifierConfig: the node's verifier configuration is the Kind one
// with the left-out workloads removed from kubernetes.workloads, nothing else.
func compareVerifierConfig(t *testing.T, kind, node *unstructured.Unstructured) {
	parse := func(o *unstructured.Unstructured) map[string]any {
		s, _, _ := unstructured.NestedString(o.Object, "data", "verifier.yaml")
		var m map[string]any
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("%s: verifier.yaml: %v", nodeObjKey(o), err)
		}
		return m
	}
	k, n := parse(kind), parse(node)
	obs, _, _ := unstructured.NestedMap(k, "kubernetes", "workloads", "dark-tower-observability")
	for kindName, v := range obs {
		list, _ := v.([]any)
		var keep []any
		for _, name := range list {
			if !nodeLeftOut[name.(string)] {
				keep = append(keep, name)
			}
		}
		if keep == nil {
			delete(obs, kindName)
		} else {
			obs[kindName] = keep
		}
	}
	if err := unstructured.SetNestedMap(k, obs, "kubernetes", "workloads", "dark-tower-observability"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(k, n) {
		t.Errorf("the node's verifier configuration (infra/overlays/node/verifier-config.yaml) is not the Kind one less Grafana, Loki and Alloy:\nkind, less them: %v\nnode: %v", k, n)
	}
	kind.Object["data"], node.Object["data"] = nil, nil
	if !reflect.DeepEqual(kind.Object, node.Object) {
		t.Errorf("ConfigMap verifier-config: metadata differs between the Kind and node overlays")
	}
}
