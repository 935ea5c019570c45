package serve

import (
	"html/template"
	"net/http"
	"time"

	"github.com/darktower/devstack/verifier/runner"
)

type pageRow struct {
	runner.CheckResult
	Live    runner.Status
	History []Verdict
	Failing *Failing // the latest attempt failed, whatever the last verdict
}

type pageData struct {
	Refresh    int
	HaveRun    bool
	Healthy    bool
	ExitCode   int
	Finished   string
	Took       string
	Running    bool
	LiveDone   int
	Total      int
	Runs       int
	Rows       []pageRow
	Generated  string
	FailingNow []string // ids whose latest attempt failed
}

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"ms":    func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"clock": func(t time.Time) string { return t.Format("15:04:05") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>Dark Tower verifier</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em}
.banner{padding:.6em 1em;border-radius:6px;margin:.5em 0 1em;font-weight:600}
.banner.healthy{background:#e3f6e5;color:#17632a}.banner.unhealthy{background:#fde8e8;color:#9b1c1c}.banner.waiting{background:#eee}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.4em .6em;border-bottom:1px solid #ddd}
td.id{font-family:monospace;white-space:nowrap}
.status{font-weight:700;text-transform:uppercase;white-space:nowrap}
.pass .status{color:#17632a}.fail .status{color:#b91c1c}.blocked .status{color:#a16207}
tr.fail{background:#fff5f5}
.detail{font-size:.92em}.detail b{display:inline-block;width:5.5em;color:#555}
code{background:#f3f3f3;padding:0 .2em}
.hist span{display:inline-block;width:9px;height:14px;margin-right:2px;border-radius:2px}
.hist .pass{background:#22a046}.hist .fail{background:#dc2626}.hist .blocked{background:#eab308}
.muted{color:#777}
</style></head><body>
<h1>Dark Tower verifier</h1>
{{if .FailingNow}}
<div id="overall" class="banner unhealthy" data-failing="{{len .FailingNow}}">
{{if and .HaveRun (not .Healthy)}}Unhealthy (exit {{.ExitCode}}){{else}}Unhealthy now{{end}}: failing {{range $i, $id := .FailingNow}}{{if $i}}, {{end}}<code>{{$id}}</code>{{end}}
<span class="muted">{{if .HaveRun}}: run #{{.Runs}} finished {{.Finished}}{{if .Healthy}} healthy{{end}}{{end}}{{if .Running}}; the run in progress is still retrying{{end}}</span></div>
{{else if .HaveRun}}
<div id="overall" class="banner {{if .Healthy}}healthy{{else}}unhealthy{{end}}" data-exit-code="{{.ExitCode}}">
{{if .Healthy}}Healthy: every check passed{{else}}Unhealthy (exit {{.ExitCode}}){{end}}
<span class="muted">: run #{{.Runs}} finished {{.Finished}}, took {{.Took}}</span></div>
{{else}}<div id="overall" class="banner waiting">First run in progress…</div>{{end}}
{{if .Running}}<p class="muted" id="progress">Checking again now: {{.LiveDone}}/{{.Total}} done.</p>{{end}}
<table><thead><tr><th>Check</th><th>State</th><th>Attempts</th><th>Took</th><th>Evidence, cause, next step</th><th>Recent history (oldest first)</th></tr></thead><tbody>
{{range .Rows}}{{if .Failing}}<tr id="check-{{.ID}}" class="fail" data-check="{{.ID}}" data-status="{{.Status}}" data-live="failing">
<td class="id">{{.ID}}</td>
<td class="status">failing</td>
<td>{{.Failing.Attempts}}</td><td>since {{clock .Failing.Since}}</td>
<td class="detail">
<div><b>what</b>{{.Failing.Error}}</div>
<div><b>evidence</b>{{if .Failing.Evidence}}{{.Failing.Evidence}}{{else}}{{.Failing.Error}}{{end}}</div>
<div><b>cause</b>{{.Failing.Class.Cause}}</div>
<div><b>next</b><code>{{.Failing.Class.Next}}</code></div>
<div class="muted">failing since {{clock .Failing.Since}}{{if eq .Failing.Status "running"}}, still retrying{{end}}</div></td>
{{else}}<tr id="check-{{.ID}}" class="{{.Status}}" data-check="{{.ID}}" data-status="{{.Status}}">
<td class="id">{{.ID}}</td>
<td class="status">{{if .Status}}{{.Status}}{{else}}{{.Live}}{{end}}</td>
<td>{{.Attempts}}</td><td>{{ms .Duration}}</td>
<td class="detail">{{if eq .Status "fail"}}
<div><b>what</b>{{.Error}}</div>
<div><b>evidence</b>{{if .Evidence}}{{.Evidence}}{{else}}{{.Error}}{{end}}</div>
<div><b>cause</b>{{.Class.Cause}}</div>
<div><b>next</b><code>{{.Class.Next}}</code></div>
{{else if eq .Status "blocked"}}blocked by <code>{{.BlockedBy}}</code>{{else}}{{.Evidence}}{{end}}</td>{{end}}
<td class="hist">{{range .History}}<span class="{{.Status}}" title="{{clock .At}} {{.Status}} {{.Class}}"></span>{{end}}</td>
</tr>
{{end}}</tbody></table>
<p class="muted">Page generated {{.Generated}}; it refreshes every {{.Refresh}}s. <a href="/healthz">/healthz</a> · <a href="/metrics">/metrics</a></p>
</body></html>
`))

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d := pageData{Refresh: min(5, max(1, int(s.interval/time.Second))), Total: len(s.checks), Runs: s.runs,
		Running: s.inflight != nil, Generated: time.Now().Format("15:04:05")}
	for _, c := range s.live {
		if c.Done() {
			d.LiveDone++
		}
	}
	latest := map[string]runner.CheckResult{}
	if s.latest != nil {
		d.HaveRun, d.ExitCode = true, s.latest.ExitCode()
		d.Healthy = d.ExitCode == runner.ExitHealthy
		d.Finished = s.latest.FinishedAt.Format("15:04:05")
		d.Took = s.latest.Duration().Round(time.Millisecond).String()
		for _, c := range s.latest.Checks {
			latest[c.ID] = c
		}
	}
	for _, c := range s.checks {
		row := pageRow{CheckResult: latest[c.ID], History: s.history[c.ID]}
		row.ID = c.ID
		if l, ok := s.live[c.ID]; ok {
			row.Live = l.Status
		} else {
			row.Live = runner.Pending
		}
		if f, ok := s.failing[c.ID]; ok {
			row.Failing = &f
			d.FailingNow = append(d.FailingNow, c.ID)
		}
		d.Rows = append(d.Rows, row)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = pageTmpl.Execute(w, d)
}
