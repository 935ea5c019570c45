// Package statuspage looks at `verifier serve`'s status page the way a person
// does, in headless Chromium, while a fault is injected.
package statuspage

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/darktower/devstack/internal/testsupport"
	"github.com/darktower/devstack/verifier/e2e/e2eutil"
)

func TestMain(m *testing.M) { testsupport.Main(m) }

func chromium(t *testing.T) string {
	for _, p := range []string{os.Getenv("CHROMIUM_BIN"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	t.Fatal("chromium not found: install Debian's chromium package (apt-get install -y chromium)")
	return ""
}

// dumpDOM loads url in headless Chromium and returns the DOM after scripts
// and layout, as a person's browser would have it.
func dumpDOM(t *testing.T, bin, url string) string { return chrome(t, bin, url, "--dump-dom") }

// chrome runs headless Chromium on url with extra flags and returns stdout.
func chrome(t *testing.T, bin, url string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-quic", "--no-first-run", "--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}, extra...)
	out, err := exec.CommandContext(ctx, bin, append(args, url)...).Output()
	if err != nil {
		t.Fatalf("chromium %s: %v", url, err)
	}
	return string(out)
}

var rowRe = regexp.MustCompile(`<tr id="check-([a-z.-]+)" class="([a-z]+)"`)

func rows(dom string) map[string]string {
	m := map[string]string{}
	for _, r := range rowRe.FindAllStringSubmatch(dom, -1) {
		m[r[1]] = r[2]
	}
	return m
}

func TestStatusPageInChromium(t *testing.T) {
	bin := chromium(t)
	rd := testsupport.StartRedis(t)
	cfg := e2eutil.Base(2*time.Second).With("redis", map[string]any{"address": rd.Addr(), "password": e2eutil.Ref("REDIS_PASSWORD")})
	b, _ := yaml.Marshal(map[string]any(cfg))
	path := filepath.Join(t.TempDir(), "verifier.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(testsupport.FreePort(t))
	testsupport.StartExternal(t, "verifier serve", testsupport.Binary(t, "verifier"),
		[]string{"serve", "--config", path, "--listen", addr, "--interval", "1s"},
		map[string]string{"REDIS_PASSWORD": rd.Password})
	url := "http://" + addr + "/"
	if err := testsupport.WaitHTTP("http://"+addr+"/healthz", http.StatusOK, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	dom := dumpDOM(t, bin, url)
	got := rows(dom)
	for _, id := range []string{"redis.reachable", "redis.auth-enforced", "redis.persistence"} {
		if got[id] != "pass" {
			t.Errorf("healthy page: %s shows %q, want pass", id, got[id])
		}
	}
	if !strings.Contains(dom, "Healthy: every check passed") || !strings.Contains(dom, "PONG from "+rd.Addr()) {
		t.Errorf("healthy page lacks the verdict or the evidence:\n%s", dom)
	}
	if os.Getenv("STATUSPAGE_SCREENSHOT") != "" {
		chrome(t, bin, url, "--screenshot="+os.Getenv("STATUSPAGE_SCREENSHOT")+"-healthy.png", "--window-size=1300,600")
	}

	rd.Stop() // the fault
	deadline := time.Now().Add(45 * time.Second)
	// The check shows failing from its first failed attempt, while its run
	// still retries (issue 11 item 14); then the run's verdict arrives.
	for {
		dom = dumpDOM(t, bin, url)
		got = rows(dom)
		if got["redis.reachable"] == "fail" {
			if strings.Contains(dom, "Healthy: every check passed") {
				t.Fatalf("redis.reachable fails but the banner says healthy:\n%s", dom)
			}
			if strings.Contains(dom, "Unhealthy (exit 3)") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed redis.reachable failing with the run's verdict: %v\n%s", got, dom)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got["redis.auth-enforced"] != "blocked" || got["redis.persistence"] != "blocked" {
		t.Errorf("dependents should show blocked: %v", got)
	}
	for _, want := range []string{"Unhealthy (exit 3)", "nothing accepts connections at " + rd.Addr(), "blocked by", `class="pass" title=`, `class="fail" title=`} {
		if !strings.Contains(dom, want) {
			t.Errorf("failing page lacks %q", want)
		}
	}
	if os.Getenv("STATUSPAGE_SCREENSHOT") != "" {
		chrome(t, bin, url, "--screenshot="+os.Getenv("STATUSPAGE_SCREENSHOT")+"-failing.png", "--window-size=1300,600")
	}
}
