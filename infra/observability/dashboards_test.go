package observability_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const (
	dashboardsDir = "grafana/dashboards"
	promUID       = "dt-prometheus"
	lokiUID       = "dt-loki"
)

// query is one panel target of a dashboard.
type query struct {
	where string // dashboard file and panel title
	ds    string // data source uid
	expr  string
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int     `json:"id"`
	Type       string  `json:"type"`
	Title      string  `json:"title"`
	Datasource *dsRef  `json:"datasource"`
	Panels     []panel `json:"panels"`
	Targets    []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource *dsRef `json:"datasource"`
	} `json:"targets"`
}

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

// loadDashboards parses every dashboard and returns them with their queries.
func loadDashboards(t *testing.T) (map[string]dashboard, []query) {
	t.Helper()
	out := map[string]dashboard{}
	var qs []query
	for _, f := range globBase(t, filepath.Join(dashboardsDir, "*.json")) {
		b, err := os.ReadFile(filepath.Join(dashboardsDir, f))
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: not valid JSON: %v", f, err)
		}
		out[f] = d
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				walk(p.Panels)
				for _, tg := range p.Targets {
					ds := ""
					if tg.Datasource != nil {
						ds = tg.Datasource.UID
					} else if p.Datasource != nil {
						ds = p.Datasource.UID
					}
					qs = append(qs, query{where: f + ": " + p.Title, ds: ds, expr: tg.Expr})
				}
			}
		}
		walk(d.Panels)
	}
	return out, qs
}

// TestDashboards: valid JSON with unique uids and titles, only the
// provisioned data sources (by uid, with the matching type), one ConfigMap
// each, small enough for any apply, Loki queries only on labels Alloy sets.
func TestDashboards(t *testing.T) {
	dash, queries := loadDashboards(t)
	if len(dash) == 0 {
		t.Fatal("no dashboards")
	}
	for _, want := range []string{"ac-service.json", "global-controller.json", "meeting-controller.json", "datastores.json", "stack-health.json"} {
		if _, ok := dash[want]; !ok {
			t.Errorf("dashboard %s is missing", want)
		}
	}
	uids, titles := map[string]string{}, map[string]string{}
	for f, d := range dash {
		if d.UID == "" || len(d.UID) > 40 || d.Title == "" {
			t.Errorf("%s: uid %q (1-40 chars) and title %q required", f, d.UID, d.Title)
		}
		if other, ok := uids[d.UID]; ok {
			t.Errorf("%s and %s share uid %q", f, other, d.UID)
		}
		uids[d.UID] = f
		if other, ok := titles[d.Title]; ok {
			t.Errorf("%s and %s share title %q", f, other, d.Title)
		}
		titles[d.Title] = f
		ids := map[int]bool{}
		var check func([]panel)
		check = func(ps []panel) {
			for _, p := range ps {
				check(p.Panels)
				if ids[p.ID] {
					t.Errorf("%s: panel id %d used twice", f, p.ID)
				}
				ids[p.ID] = true
				if p.Type == "row" {
					continue
				}
				if p.Datasource == nil || !knownDS(*p.Datasource) {
					t.Errorf("%s: panel %q data source %+v is not a provisioned one", f, p.Title, p.Datasource)
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no query", f, p.Title)
				}
				for _, tg := range p.Targets {
					if tg.Datasource != nil && !knownDS(*tg.Datasource) {
						t.Errorf("%s: panel %q target %s data source %+v is not a provisioned one", f, p.Title, tg.RefID, tg.Datasource)
					}
					if strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("%s: panel %q target %s has no expression", f, p.Title, tg.RefID)
					}
				}
			}
		}
		check(d.Panels)
		st, err := os.Stat(filepath.Join(dashboardsDir, f))
		if err != nil {
			t.Fatal(err)
		}
		// SPEC section 9 item 11: stay far below the 262,144-byte
		// last-applied annotation limit even under client-side apply.
		if st.Size() > 131072 {
			t.Errorf("%s is %d bytes; split it", f, st.Size())
		}
	}

	lokiLabels := alloyStreamLabels(t)
	for _, q := range queries {
		if q.ds != lokiUID {
			continue
		}
		for _, l := range logqlSelectorLabels(q.expr) {
			if !lokiLabels[l] {
				t.Errorf("%s: Loki query %q uses label %q, which Alloy does not set (it sets %v)", q.where, q.expr, l, sortedKeys(lokiLabels))
			}
		}
	}

	// One ConfigMap per dashboard, all of them mounted.
	k := loadDoc(t, "kustomization.yaml")
	gen := map[string]string{} // dashboard file -> ConfigMap
	for _, g := range list(k, "configMapGenerator") {
		name := str(g, "name")
		if !strings.HasPrefix(name, "grafana-dashboard-") {
			continue
		}
		files := strs(g, "files")
		if len(files) != 1 {
			t.Errorf("ConfigMap %s holds %d files, want one dashboard", name, len(files))
			continue
		}
		gen[filepath.Base(files[0])] = name
	}
	if !equalSets(sortedKeys(gen), sortedKeys(dash)) {
		t.Errorf("dashboard ConfigMaps cover %v, dashboards are %v", sortedKeys(gen), sortedKeys(dash))
	}
	var mounted []string
	for _, v := range podVolumes(t, "grafana/deployment.yaml") {
		if v.Name != "dashboards" || v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			name := ""
			if s.ConfigMap != nil {
				name = s.ConfigMap.Name
			}
			mounted = append(mounted, name)
		}
	}
	var want []string
	for _, cm := range gen {
		want = append(want, cm)
	}
	if !equalSets(mounted, want) {
		t.Errorf("Grafana mounts dashboard ConfigMaps %v, kustomization generates %v", mounted, want)
	}
}

func knownDS(d dsRef) bool {
	return d.UID == promUID && d.Type == "prometheus" || d.UID == lokiUID && d.Type == "loki"
}

// TestDataSources: the provisioned uids are the ones dashboards use, and
// the URLs name the Services in this directory.
func TestDataSources(t *testing.T) {
	doc := loadDoc(t, "grafana/provisioning/datasources.yaml")
	got := map[string]string{}
	for _, d := range list(doc, "datasources") {
		got[str(d, "uid")] = str(d, "type") + " " + str(d, "url")
	}
	want := map[string]string{
		promUID: "prometheus http://prometheus.dark-tower-observability.svc:9090",
		lokiUID: "loki http://loki.dark-tower-observability.svc:3100",
	}
	if len(got) != len(want) {
		t.Errorf("data sources %v, want %v", got, want)
	}
	for uid, w := range want {
		if got[uid] != w {
			t.Errorf("data source %s = %q, want %q", uid, got[uid], w)
		}
	}
	home := filepath.Join(dashboardsDir, "stack-health.json")
	if _, err := os.Stat(home); err != nil {
		t.Errorf("home dashboard: %v", err)
	}
}

var selectorRE = regexp.MustCompile(`\{([^}]*)\}`)
var matcherRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)

// logqlSelectorLabels lists the label names in a LogQL stream selector.
func logqlSelectorLabels(expr string) []string {
	m := selectorRE.FindStringSubmatch(expr)
	if m == nil {
		return nil
	}
	var out []string
	for _, mm := range matcherRE.FindAllStringSubmatch(m[1], -1) {
		out = append(out, mm[1])
	}
	return out
}

func TestLogQLSelectorLabels(t *testing.T) {
	got := logqlSelectorLabels(`{service="ac-service", level=~"WARN|ERROR"} |= "x"`)
	if !equalSets(got, []string{"service", "level"}) {
		t.Fatalf("got %v", got)
	}
}
