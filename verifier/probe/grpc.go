package probe

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
)

// The gc section's checks. The registry of a GC that answers without a
// token proves nothing (anyone could have registered), so gc.registration
// waits for auth; an MC reports HEALTHY only with Redis (with Redis down,
// redis.reachable says so and the MC checks are blocked), and the registry
// lives in Postgres.
var gcChecks = []Spec{
	{ID: "gc.health", Enabled: hasGC, Targets: gcAddresses, Services: gcNames, Probe: gcHealth},
	{ID: "gc.auth-enforced", Needs: []string{"gc.health"}, Enabled: hasGC, Targets: gcAddresses, Services: gcNames, Probe: gcAuthEnforced},
	{ID: "gc.registration", Needs: []string{"gc.auth-enforced", "ac.token", "redis.reachable", "postgres.reachable"},
		Enabled: hasRegistry, Targets: gcAddresses, Services: gcNames, Probe: gcRegistration},
}

func hasGC(c *config.Config) bool           { return c.GC != nil }
func gcAddresses(c *config.Config) []string { return c.GC.GRPCAddresses }
func gcNames(c *config.Config) []string     { return dnsNames(c.GC.GRPCAddresses...) }

// hasRegistry: gc.registration and the MC checks need GC (the registry), AC
// (the verifier's token for it) and MCs to expect.
func hasRegistry(c *config.Config) bool { return c.GC != nil && c.AC != nil && c.MC != nil }

func grpcDial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// gcHealth: grpc.health.v1 answers SERVING on every GC.
func gcHealth(ctx context.Context, t Target, log *slog.Logger) Result {
	return each(ctx, t.Cfg.GC.GRPCAddresses, func(ctx context.Context, addr string) (string, error) {
		conn, err := grpcDial(addr)
		if err != nil {
			return "", classify.At(addr, err)
		}
		defer conn.Close()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(false))
		if err != nil {
			return "", classify.At(addr, err)
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return resp.Status.String(), classify.At(addr, classify.Failf(classify.GCNotServing, "health is %s", resp.Status))
		}
		return "SERVING", nil
	})
}

// gcAuthEnforced: a registry call with no token, and one with a token that is
// not a JWT, both get UNAUTHENTICATED. ListMeetingControllers only reads.
func gcAuthEnforced(ctx context.Context, t Target, log *slog.Logger) Result {
	return each(ctx, t.Cfg.GC.GRPCAddresses, func(ctx context.Context, addr string) (string, error) {
		conn, err := grpcDial(addr)
		if err != nil {
			return "", classify.At(addr, err)
		}
		defer conn.Close()
		client := internalv1.NewGlobalControllerServiceClient(conn)
		var obs []string
		for _, c := range []struct {
			name string
			ctx  context.Context
		}{
			{"no token", ctx},
			{"malformed token", metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer not-a-jwt")},
		} {
			_, err := client.ListMeetingControllers(c.ctx, &internalv1.ListMeetingControllersRequest{})
			code := status.Code(err)
			switch code {
			case codes.Unauthenticated:
				obs = append(obs, c.name+": UNAUTHENTICATED")
				continue
			case codes.OK:
				return strings.Join(append(obs, c.name+": OK"), ", "),
					classify.At(addr, classify.Failf(classify.GCAuthNotEnforced, "ListMeetingControllers with %s answered OK", c.name))
			case codes.PermissionDenied, codes.Internal, codes.Unknown:
				return strings.Join(append(obs, c.name+": "+code.String()), ", "),
					classify.At(addr, classify.Failf(classify.GCAuthWrongCode, "ListMeetingControllers with %s answered %s, want Unauthenticated", c.name, code))
			}
			return strings.Join(obs, ", "), classify.At(addr, err)
		}
		return strings.Join(obs, ", "), nil
	})
}

// gcRegistration: with the verifier's token, every GC lists the registry;
// the expected MCs are HEALTHY with a fresh heartbeat and no others are live.
func gcRegistration(ctx context.Context, t Target, log *slog.Logger) Result {
	tok := t.Run.getToken()
	if tok.Empty() {
		return Failed(classify.Failf(classify.ACTokenInvalid, "no token from ac.token"), "")
	}
	m := t.Cfg.MC
	addrs := t.Cfg.GC.GRPCAddresses
	lists := make([][]*internalv1.MeetingController, len(addrs))
	res := each(ctx, addrs, func(ctx context.Context, addr string) (string, error) {
		conn, err := grpcDial(addr)
		if err != nil {
			return "", classify.At(addr, err)
		}
		defer conn.Close()
		actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok.Reveal())
		resp, err := internalv1.NewGlobalControllerServiceClient(conn).ListMeetingControllers(actx,
			&internalv1.ListMeetingControllersRequest{Region: m.Region})
		if err != nil {
			return "", classify.At(addr, err)
		}
		lists[slices.Index(addrs, addr)] = resp.Controllers
		return fmt.Sprintf("%d listed", len(resp.Controllers)), nil
	})
	if res.Err != nil {
		return res
	}
	// Every replica reads the same registry; judge the first one's answer.
	live, obs, ferr := judgeRegistry(lists[0], m.ExpectedCount, m.ExpectedIDs, m.Threshold(), time.Now())
	if ferr != nil {
		return Failed(classify.At(addrs[0], ferr), obs)
	}
	t.Run.setControllers(live)
	free, cerr := judgeCapacity(live)
	obs += "; free: " + free
	if cerr != nil {
		return Failed(classify.At(addrs[0], cerr), obs)
	}
	return Pass("%s", obs)
}

// judgeCapacity says what room each live controller has and fails when no
// live controller can take another meeting: a fleet that is up but full
// answers every new join with 503, and that is not healthy.
func judgeCapacity(live []*internalv1.MeetingController) (string, error) {
	var parts []string
	open := 0
	for _, c := range live {
		cp := c.GetCapacity()
		meetings := int64(cp.GetMaxMeetings()) - int64(cp.GetCurrentMeetings())
		participants := int64(cp.GetMaxParticipants()) - int64(cp.GetCurrentParticipants())
		parts = append(parts, fmt.Sprintf("%s %d/%d meetings, %d/%d participants", c.Id,
			max(meetings, 0), cp.GetMaxMeetings(), max(participants, 0), cp.GetMaxParticipants()))
		if meetings > 0 && participants > 0 {
			open++
		}
	}
	free := strings.Join(parts, "; ")
	if len(live) > 0 && open == 0 {
		return free, classify.Failf(classify.GCNoCapacity, "no live meeting controller has room for another meeting or participant")
	}
	return free, nil
}

// judgeRegistry decides whether the listed controllers are the expected ones.
// Live means HEALTHY with a heartbeat no older than threshold.
func judgeRegistry(list []*internalv1.MeetingController, count int, ids []string, threshold time.Duration, now time.Time) ([]*internalv1.MeetingController, string, error) {
	sort.Slice(list, func(i, j int) bool { return list[i].Id < list[j].Id })
	byID := map[string]*internalv1.MeetingController{}
	var live, stale, unhealthy []*internalv1.MeetingController
	var parts []string
	for _, c := range list {
		byID[c.Id] = c
		age := now.Sub(c.GetLastHeartbeatAt().AsTime())
		health := strings.TrimPrefix(c.Health.String(), "HEALTH_STATUS_")
		parts = append(parts, fmt.Sprintf("%s %s heartbeat %s ago", c.Id, health, age.Round(100*time.Millisecond)))
		switch {
		case age > threshold:
			stale = append(stale, c)
		case c.Health != internalv1.HealthStatus_HEALTH_STATUS_HEALTHY:
			unhealthy = append(unhealthy, c)
		default:
			live = append(live, c)
		}
	}
	obs := fmt.Sprintf("%d live of %d listed (want %d, heartbeat threshold %s)", len(live), len(list), count, threshold)
	if len(parts) > 0 {
		obs += ": " + strings.Join(parts, "; ")
	}
	describe := func(cs []*internalv1.MeetingController) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.Id)
		}
		return strings.Join(s, ", ")
	}
	if len(ids) > 0 {
		var missing, st, un []string
		for _, id := range ids {
			c, ok := byID[id]
			switch {
			case !ok:
				missing = append(missing, id)
			case now.Sub(c.GetLastHeartbeatAt().AsTime()) > threshold:
				st = append(st, id)
			case c.Health != internalv1.HealthStatus_HEALTH_STATUS_HEALTHY:
				un = append(un, id+" ("+c.Health.String()+")")
			}
		}
		var extra []string
		for _, c := range live {
			if !slices.Contains(ids, c.Id) {
				extra = append(extra, c.Id)
			}
		}
		switch {
		case len(st) > 0:
			return nil, obs, classify.Failf(classify.GCMCStale, "heartbeat older than %s: %s", threshold, strings.Join(st, ", "))
		case len(missing) > 0:
			return nil, obs, classify.Failf(classify.GCMCMissing, "expected MC(s) not registered: %s", strings.Join(missing, ", "))
		case len(un) > 0:
			return nil, obs, classify.Failf(classify.GCMCUnhealthy, "not HEALTHY: %s", strings.Join(un, ", "))
		case len(extra) > 0:
			return nil, obs, classify.Failf(classify.GCMCUnexpected, "live MC(s) nobody expects: %s", strings.Join(extra, ", "))
		}
		return live, obs, nil
	}
	switch {
	case len(live) > count:
		return nil, obs, classify.Failf(classify.GCMCUnexpected, "%d live MCs, want %d: %s", len(live), count, describe(live))
	case len(live) < count && len(stale) > 0:
		return nil, obs, classify.Failf(classify.GCMCStale, "%d live MCs, want %d; heartbeat older than %s: %s", len(live), count, threshold, describe(stale))
	case len(live) < count && len(unhealthy) > 0:
		return nil, obs, classify.Failf(classify.GCMCUnhealthy, "%d live MCs, want %d; not HEALTHY: %s", len(live), count, describe(unhealthy))
	case len(live) < count:
		return nil, obs, classify.Failf(classify.GCMCMissing, "%d MCs registered, want %d", len(live), count)
	}
	return live, obs, nil
}
