package probe

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// withDNS adds to a check's evidence what each target name resolved to
// (the fully qualified Service name and its addresses), so a cluster report
// shows which Service a probe really reached and a name that resolves
// somewhere unexpected is visible.
func withDNS(fn Func, hosts []string) Func {
	if len(hosts) == 0 {
		return fn
	}
	return func(ctx context.Context, t Target, log *slog.Logger) Result {
		res := fn(ctx, t, log)
		if note := resolveNames(ctx, hosts); note != "" {
			if res.Observed != "" {
				res.Observed += "; "
			}
			res.Observed += note
		}
		return res
	}
}

func resolveNames(ctx context.Context, hosts []string) string {
	// Its own short budget: the attempt's may be spent by a probe that timed out.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	var notes []string
	for _, h := range hosts {
		addrs, err := net.DefaultResolver.LookupHost(ctx, h)
		if err != nil {
			notes = append(notes, "DNS "+h+": "+err.Error())
			continue
		}
		name := h
		if cname, err := net.DefaultResolver.LookupCNAME(ctx, h); err == nil && cname != "" {
			name = strings.TrimSuffix(cname, ".")
		}
		notes = append(notes, "DNS "+h+" = "+name+" "+strings.Join(addrs, ","))
	}
	return strings.Join(notes, "; ")
}

// dnsNames are the host names (not IP literals) in host:port addresses and
// URLs, each once.
func dnsNames(targets ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range targets {
		h := t
		if strings.Contains(t, "://") {
			u, err := url.Parse(t)
			if err != nil {
				continue
			}
			h = u.Hostname()
		} else if host, _, err := net.SplitHostPort(t); err == nil {
			h = host
		} else {
			continue
		}
		if h == "" || net.ParseIP(h) != nil || seen[h] {
			continue
		}
		seen[h] = true
		out = append(out, h)
	}
	return out
}
