package observability_test

import (
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/grafana/alloy/syntax/ast"
	"github.com/grafana/alloy/syntax/parser"

	"github.com/darktower/devstack/internal/manifest"
)

const alloyConfig = "alloy/config.alloy"

// component is one Alloy component block, e.g. loki.process "json".
type component struct {
	kind, label string
	block       *ast.BlockStmt
}

// parseAlloy parses the configuration with Alloy's own syntax parser
// (github.com/grafana/alloy/syntax, the module Alloy itself uses) and
// returns its top-level components.
func parseAlloy(t *testing.T) []component {
	t.Helper()
	b, err := os.ReadFile(alloyConfig)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(alloyConfig, b)
	if err != nil {
		t.Fatalf("alloy syntax: %v", err)
	}
	var out []component
	for _, s := range f.Body {
		blk, ok := s.(*ast.BlockStmt)
		if !ok {
			t.Errorf("%s: top-level attribute %T; only component blocks are expected", alloyConfig, s)
			continue
		}
		out = append(out, component{kind: strings.Join(blk.Name, "."), label: blk.Label, block: blk})
	}
	return out
}

// refs returns the dotted references (a.b.c.d) in an expression tree.
func refs(e ast.Expr) []string {
	var out []string
	var dotted func(ast.Expr) (string, bool)
	dotted = func(e ast.Expr) (string, bool) {
		switch x := e.(type) {
		case *ast.IdentifierExpr:
			return x.Ident.Name, true
		case *ast.AccessExpr:
			if s, ok := dotted(x.Value); ok {
				return s + "." + x.Name.Name, true
			}
		}
		return "", false
	}
	var walk func(ast.Expr)
	walk = func(e ast.Expr) {
		if s, ok := dotted(e); ok {
			out = append(out, s)
			return
		}
		switch x := e.(type) {
		case *ast.ArrayExpr:
			for _, el := range x.Elements {
				walk(el)
			}
		case *ast.ObjectExpr:
			for _, f := range x.Fields {
				walk(f.Value)
			}
		case *ast.CallExpr:
			walk(x.Value)
			for _, a := range x.Args {
				walk(a)
			}
		case *ast.BinaryExpr:
			walk(x.Left)
			walk(x.Right)
		case *ast.UnaryExpr:
			walk(x.Value)
		case *ast.ParenExpr:
			walk(x.Inner)
		case *ast.IndexExpr:
			walk(x.Value)
			walk(x.Index)
		}
	}
	walk(e)
	return out
}

// attrs visits every attribute in a body, nested blocks included, with the
// path of block names leading to it.
func attrs(body ast.Body, path string, visit func(path, name string, v ast.Expr)) {
	for _, s := range body {
		switch x := s.(type) {
		case *ast.AttributeStmt:
			visit(path, x.Name.Name, x.Value)
		case *ast.BlockStmt:
			attrs(x.Body, path+"/"+strings.Join(x.Name, "."), visit)
		}
	}
}

func stringLit(e ast.Expr) (string, bool) {
	l, ok := e.(*ast.LiteralExpr)
	if !ok {
		return "", false
	}
	s, err := strconv.Unquote(l.Value)
	return s, err == nil
}

// TestAlloyConfig: the configuration parses; it reads pods through the API
// (no file or host access), only in namespace dark-tower (what its Role
// allows); every component reference resolves; JSON level and service
// become labels; it pushes to the Loki Service.
func TestAlloyConfig(t *testing.T) {
	comps := parseAlloy(t)
	declared := map[string]bool{}
	kinds := map[string]bool{}
	for _, c := range comps {
		id := c.kind + "." + c.label
		if declared[id] {
			t.Errorf("component %s %q declared twice", c.kind, c.label)
		}
		declared[id] = true
		kinds[c.kind] = true
	}
	for _, k := range []string{"discovery.kubernetes", "discovery.relabel", "loki.source.kubernetes", "loki.process", "loki.write"} {
		if !kinds[k] {
			t.Errorf("no %s component", k)
		}
	}
	for _, k := range []string{"loki.source.file", "local.file_match", "loki.source.docker"} {
		if kinds[k] {
			t.Errorf("%s needs host files (hostPath), which restricted Pod Security forbids", k)
		}
	}
	for _, c := range comps {
		attrs(c.block.Body, c.kind, func(path, name string, v ast.Expr) {
			for _, r := range refs(v) {
				if !strings.HasPrefix(r, "discovery.") && !strings.HasPrefix(r, "loki.") {
					continue // sys.env, constants.hostname and other standard library names
				}
				ok := false
				for id := range declared {
					if strings.HasPrefix(r, id+".") {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s %q: %s = %s refers to an undeclared component", c.kind, c.label, name, r)
				}
			}
			switch {
			case path == "discovery.kubernetes/namespaces" && name == "names":
				arr, _ := v.(*ast.ArrayExpr)
				var ns []string
				if arr != nil {
					for _, el := range arr.Elements {
						s, _ := stringLit(el)
						ns = append(ns, s)
					}
				}
				if !equalSets(ns, []string{"dark-tower"}) {
					t.Errorf("discovery.kubernetes namespaces = %v, want [dark-tower] (alloy/rbac.yaml grants no more)", ns)
				}
			case c.kind == "loki.write" && name == "url":
				s, _ := stringLit(v)
				u, err := url.Parse(s)
				if err != nil || u.Hostname() != "loki.dark-tower-observability.svc" || u.Port() != "3100" || u.Path != "/loki/api/v1/push" {
					t.Errorf("loki.write url %q: want the loki Service on 3100, /loki/api/v1/push", s)
				}
			}
		})
	}
	labels := alloyStreamLabels(t)
	for _, l := range []string{"namespace", "pod", "container", "level", "service"} {
		if !labels[l] {
			t.Errorf("Alloy does not set stream label %q", l)
		}
	}
}

// alloyStreamLabels are the labels Alloy's streams carry: relabel targets
// and the labels promoted by loki.process.
func alloyStreamLabels(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, c := range parseAlloy(t) {
		attrs(c.block.Body, c.kind, func(path, name string, v ast.Expr) {
			switch {
			case path == "discovery.relabel/rule" && name == "target_label":
				if s, ok := stringLit(v); ok {
					out[s] = true
				}
			case path == "loki.process/stage.labels" && name == "values":
				if o, ok := v.(*ast.ObjectExpr); ok {
					for _, f := range o.Fields {
						out[f.Name.Name] = true
					}
				}
			}
		})
	}
	return out
}

// TestLokiConfig: structural checks (Loki's own Go module is AGPL and huge,
// so its parser is not used): single binary, no auth, filesystem storage
// under the StatefulSet's volume, TSDB schema v13, listening where the
// Service and probes point.
func TestLokiConfig(t *testing.T) {
	c := loadDoc(t, "loki/loki.yaml")
	known := map[string]bool{"auth_enabled": true, "server": true, "common": true, "schema_config": true,
		"limits_config": true, "compactor": true, "analytics": true, "ingester": true, "storage_config": true,
		"query_range": true, "ruler": true, "frontend": true, "querier": true, "pattern_ingester": true}
	for k := range c {
		if !known[k] {
			t.Errorf("loki.yaml: unexpected top-level key %q", k)
		}
	}
	if v, ok := c["auth_enabled"].(bool); !ok || v {
		t.Errorf("auth_enabled = %v, want false (single tenant)", c["auth_enabled"])
	}
	if p, _ := get(c, "server", "http_listen_port").(int); p != 3100 {
		t.Errorf("server.http_listen_port = %v, want 3100", get(c, "server", "http_listen_port"))
	}
	prefix := str(c, "common", "path_prefix")
	if prefix != "/loki" {
		t.Errorf("common.path_prefix = %q, want /loki (the StatefulSet's volume)", prefix)
	}
	for _, k := range []string{"chunks_directory", "rules_directory"} {
		if d := str(c, "common", "storage", "filesystem", k); !strings.HasPrefix(d, prefix+"/") {
			t.Errorf("common.storage.filesystem.%s = %q, want under %s", k, d, prefix)
		}
	}
	if d := str(c, "compactor", "working_directory"); !strings.HasPrefix(d, prefix+"/") {
		t.Errorf("compactor.working_directory = %q, want under %s", d, prefix)
	}
	if f, _ := get(c, "common", "replication_factor").(int); f != 1 {
		t.Errorf("common.replication_factor = %v, want 1", get(c, "common", "replication_factor"))
	}
	if s := str(c, "common", "ring", "kvstore", "store"); s != "inmemory" {
		t.Errorf("ring kvstore %q, want inmemory", s)
	}
	sc := list(c, "schema_config", "configs")
	if len(sc) != 1 || str(sc[0], "store") != "tsdb" || str(sc[0], "object_store") != "filesystem" ||
		str(sc[0], "schema") != "v13" || str(sc[0], "index", "period") != "24h" {
		t.Errorf("schema_config.configs = %v, want one tsdb/filesystem/v13 with a 24h index", sc)
	}

	// The StatefulSet mounts the config where its argument says and the
	// volume at the path prefix.
	sts, _, err := manifest.WorkloadOf(loadObject(t, "loki/statefulset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctr := sts.Template.Spec.Containers[0]
	if a := ctr.Args; !equalSets(a, []string{"-config.file=/etc/loki/loki.yaml"}) {
		t.Errorf("loki args %v", a)
	}
	mounts := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["config"] != "/etc/loki" || mounts["data"] != prefix {
		t.Errorf("loki mounts %v: want config at /etc/loki and data at %s", mounts, prefix)
	}
	k := loadDoc(t, "kustomization.yaml")
	for _, g := range list(k, "configMapGenerator") {
		if str(g, "name") == "loki-config" && !equalSets(strs(g, "files"), []string{"loki.yaml=loki/loki.yaml"}) {
			t.Errorf("loki-config files %v", strs(g, "files"))
		}
	}
}
