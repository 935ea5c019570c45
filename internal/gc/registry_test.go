package gc

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/darktower/devstack/gen/internalv1"
)

const (
	pending   = internalv1.HealthStatus_HEALTH_STATUS_PENDING
	healthy   = internalv1.HealthStatus_HEALTH_STATUS_HEALTHY
	degraded  = internalv1.HealthStatus_HEALTH_STATUS_DEGRADED
	unhealthy = internalv1.HealthStatus_HEALTH_STATUS_UNHEALTHY
	draining  = internalv1.HealthStatus_HEALTH_STATUS_DRAINING
)

func wantCode(t *testing.T, err error, code codes.Code, msgPart string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), msgPart) {
		t.Fatalf("got %v %q, want %v mentioning %q", st.Code(), st.Message(), code, msgPart)
	}
}

// TestRegistry drives the registration protocol through a real gRPC server
// and checks the rows it leaves in Postgres.
func TestRegistry(t *testing.T) {
	e := startGC(t, migratedPostgres(t), func(c *Config) {
		c.FastHeartbeat, c.ComprehensiveInterval = 7*time.Second, 21*time.Second
	})
	mc := client(t, e.grpcAddr, e.mcToken(t))
	reader := client(t, e.grpcAddr, e.verifierToken(t))

	t.Run("round trip", func(t *testing.T) {
		ctx := ctxT(t)
		resp, err := mc.RegisterMC(ctx, regReq("mc-rt", "rt"))
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Accepted || resp.FastHeartbeatIntervalMs != 7000 || resp.ComprehensiveHeartbeatIntervalMs != 21000 {
			t.Fatalf("RegisterMC = %+v, want accepted with 7000/21000 ms", resp)
		}
		list, err := reader.ListMeetingControllers(ctx, &internalv1.ListMeetingControllersRequest{Region: "rt"})
		if err != nil || len(list.Controllers) != 1 || list.Controllers[0].Health != pending {
			t.Fatalf("after register: %v %v, want one PENDING", list, err)
		}
		before := list.Controllers[0].LastHeartbeatAt.AsTime()

		hb, err := mc.FastHeartbeat(ctx, fastHB("mc-rt", 4, healthy))
		if err != nil || !hb.Acknowledged || hb.Timestamp == nil {
			t.Fatalf("FastHeartbeat = %v, %v", hb, err)
		}
		list, err = reader.ListMeetingControllers(ctx, &internalv1.ListMeetingControllersRequest{Region: "rt"})
		if err != nil {
			t.Fatal(err)
		}
		got := list.Controllers[0]
		if got.Id != "mc-rt" || got.Health != healthy || got.Capacity.CurrentMeetings != 4 || got.Capacity.CurrentParticipants != 12 ||
			got.GrpcEndpoint != "http://127.0.0.1:50052" || got.WebtransportEndpoint != "https://127.0.0.1:4433" ||
			got.WebtransportCertSha256 != strings.Repeat("ab", 32) || !got.LastHeartbeatAt.AsTime().After(before) {
			t.Fatalf("after heartbeat: %+v", got)
		}

		ch, err := mc.ComprehensiveHeartbeat(ctx, &internalv1.ComprehensiveHeartbeatRequest{
			ControllerId: "mc-rt", Health: degraded, CpuUsagePercent: 55, MemoryUsagePercent: 40,
			Capacity: &internalv1.Capacity{MaxMeetings: 20, CurrentMeetings: 5, MaxParticipants: 200, CurrentParticipants: 9},
		})
		if err != nil || !ch.Acknowledged {
			t.Fatalf("ComprehensiveHeartbeat = %v, %v", ch, err)
		}
		var health string
		var maxM, cur int32
		if err := e.pool.QueryRow(ctx, `SELECT health_status, max_meetings, current_meetings FROM meeting_controllers WHERE controller_id='mc-rt'`).
			Scan(&health, &maxM, &cur); err != nil || health != "degraded" || maxM != 20 || cur != 5 {
			t.Fatalf("row = %s %d %d %v, want degraded 20 5", health, maxM, cur, err)
		}
		// Filters.
		for _, f := range []struct {
			req  *internalv1.ListMeetingControllersRequest
			want int
		}{
			{&internalv1.ListMeetingControllersRequest{Region: "rt", Health: degraded}, 1},
			{&internalv1.ListMeetingControllersRequest{Region: "rt", Health: healthy}, 0},
			{&internalv1.ListMeetingControllersRequest{Region: "elsewhere"}, 0},
		} {
			l, err := reader.ListMeetingControllers(ctx, f.req)
			if err != nil || len(l.Controllers) != f.want {
				t.Fatalf("List(%v) = %d controllers, %v; want %d", f.req, len(l.GetControllers()), err, f.want)
			}
		}

		dr, err := mc.DeregisterMC(ctx, &internalv1.DeregisterMCRequest{ControllerId: "mc-rt", Reason: "draining"})
		if err != nil || !dr.Acknowledged {
			t.Fatalf("DeregisterMC = %v, %v", dr, err)
		}
		var h string
		if err := e.pool.QueryRow(ctx, `SELECT health_status FROM meeting_controllers WHERE controller_id='mc-rt'`).Scan(&h); err != nil || h != "draining" {
			t.Fatalf("health after deregister = %q, %v; want draining until the sweeper removes it", h, err)
		}
		l, err := reader.ListMeetingControllers(ctx, &internalv1.ListMeetingControllersRequest{Region: "rt", Health: draining})
		if err != nil || len(l.Controllers) != 1 {
			t.Fatalf("draining list = %v, %v", l, err)
		}
	})

	t.Run("heartbeat of unknown id is NOT_FOUND", func(t *testing.T) {
		_, err := mc.FastHeartbeat(ctxT(t), fastHB("never-registered", 0, healthy))
		wantCode(t, err, codes.NotFound, "never-registered")
		_, err = mc.ComprehensiveHeartbeat(ctxT(t), &internalv1.ComprehensiveHeartbeatRequest{
			ControllerId: "never-registered", Health: healthy,
			Capacity: &internalv1.Capacity{MaxMeetings: 1, MaxParticipants: 1},
		})
		wantCode(t, err, codes.NotFound, "never-registered")
	})

	t.Run("register twice keeps one row and resets to pending", func(t *testing.T) {
		ctx := ctxT(t)
		if _, err := mc.RegisterMC(ctx, regReq("mc-twice", "twice")); err != nil {
			t.Fatal(err)
		}
		if _, err := mc.FastHeartbeat(ctx, fastHB("mc-twice", 3, healthy)); err != nil {
			t.Fatal(err)
		}
		again := regReq("mc-twice", "twice")
		again.GrpcEndpoint = "http://127.0.0.1:50053"
		if _, err := mc.RegisterMC(ctx, again); err != nil {
			t.Fatal(err)
		}
		var n int
		var ep, health string
		if err := e.pool.QueryRow(ctx, `SELECT count(*), max(grpc_endpoint), max(health_status) FROM meeting_controllers WHERE controller_id='mc-twice'`).
			Scan(&n, &ep, &health); err != nil || n != 1 || ep != "http://127.0.0.1:50053" || health != "pending" {
			t.Fatalf("rows = %d endpoint %s health %s %v; want 1 row, new endpoint, pending", n, ep, health, err)
		}
	})

	t.Run("validation is INVALID_ARGUMENT naming the field", func(t *testing.T) {
		reg := func(f func(r *internalv1.RegisterMCRequest)) error {
			r := regReq("mc-valid", "v")
			f(r)
			_, err := mc.RegisterMC(ctxT(t), r)
			return err
		}
		cases := []struct {
			field string
			mod   func(r *internalv1.RegisterMCRequest)
		}{
			{"id", func(r *internalv1.RegisterMCRequest) { r.Id = "" }},
			{"id", func(r *internalv1.RegisterMCRequest) { r.Id = strings.Repeat("a", 256) }},
			{"id", func(r *internalv1.RegisterMCRequest) { r.Id = "bad id!" }},
			{"region", func(r *internalv1.RegisterMCRequest) { r.Region = "" }},
			{"region", func(r *internalv1.RegisterMCRequest) { r.Region = strings.Repeat("r", 51) }},
			{"grpc_endpoint", func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "" }},
			{"grpc_endpoint", func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "10.0.0.1:50052" }},
			{"grpc_endpoint", func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "ftp://10.0.0.1:50052" }},
			{"grpc_endpoint", func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "http://" + strings.Repeat("h", 250) }},
			{"webtransport_endpoint", func(r *internalv1.RegisterMCRequest) { r.WebtransportEndpoint = "quic://x:4433" }},
			{"webtransport_endpoint", func(r *internalv1.RegisterMCRequest) { r.WebtransportEndpoint = "https://" + strings.Repeat("h", 250) }},
			{"max_meetings", func(r *internalv1.RegisterMCRequest) { r.MaxMeetings = 0 }},
			{"max_participants", func(r *internalv1.RegisterMCRequest) { r.MaxParticipants = 0 }},
			{"max_participants", func(r *internalv1.RegisterMCRequest) { r.MaxParticipants = 1 << 31 }},
			{"webtransport_cert_sha256", func(r *internalv1.RegisterMCRequest) { r.WebtransportCertSha256 = "xyz" }},
			// Issue 11 items 5 and 6: what Postgres or GC's dialer would have
			// choked on, or what points GC somewhere odd.
			{"region", func(r *internalv1.RegisterMCRequest) { r.Region = "eu\x00west" }},
			{"region", func(r *internalv1.RegisterMCRequest) { r.Region = "eu\nwest" }},
			{"region", func(r *internalv1.RegisterMCRequest) { r.Region = strings.Repeat("é", 51) }},
			{"grpc_endpoint", func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "http://10.0.0.1:99999" }},
			{"grpc_endpoint", func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "http://10.0.0.1:0" }},
			{"grpc_endpoint", func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "http://10.0.0.1" }},
			{"grpc_endpoint", func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "http://user:pw@10.0.0.1:50052" }},
			{"grpc_endpoint", func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "http://10.0.0.1:50052/x" }},
			{"grpc_endpoint", func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "http://10.0.0.1:50052?q=1" }},
			{"grpc_endpoint", func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "http://10.0.0.1:50052#f" }},
			{"grpc_endpoint", func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "http://unix:/var/run/x.sock" }},
			{"grpc_endpoint", func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "http://a%20b:50052" }},
			{"webtransport_endpoint", func(r *internalv1.RegisterMCRequest) { r.WebtransportEndpoint = "http://10.0.0.1:4433" }},
			{"webtransport_endpoint", func(r *internalv1.RegisterMCRequest) { r.WebtransportEndpoint = "https://10.0.0.1:4433/p" }},
		}
		for _, c := range cases {
			wantCode(t, reg(c.mod), codes.InvalidArgument, c.field+":")
		}
		// Edges that are valid.
		if err := reg(func(r *internalv1.RegisterMCRequest) {
			r.Id = strings.Repeat("a", 255)
			r.Region = strings.Repeat("r", 50)
		}); err != nil {
			t.Fatalf("255-char id and 50-char region: %v", err)
		}
		// Valid shapes (validation only: GC then demands the caller's own IP).
		edge := regReq("mc-valid", strings.Repeat("é", 50)) // 100 bytes, 50 characters
		edge.GrpcEndpoint = "https://mc-0.mc.dark-tower.svc:50052/"
		edge.WebtransportEndpoint = "https://[fd00::7]:4433"
		if err := validateRegister(edge); err != nil {
			t.Fatalf("50 two-byte characters, a DNS host, an IPv6 host: %v", err)
		}

		hb := func(f func(r *internalv1.FastHeartbeatRequest)) error {
			r := fastHB("mc-valid", 1, healthy)
			f(r)
			_, err := mc.FastHeartbeat(ctxT(t), r)
			return err
		}
		hcases := []struct {
			field string
			mod   func(r *internalv1.FastHeartbeatRequest)
		}{
			{"controller_id", func(r *internalv1.FastHeartbeatRequest) { r.ControllerId = "" }},
			{"controller_id", func(r *internalv1.FastHeartbeatRequest) { r.ControllerId = "a/b" }},
			{"capacity", func(r *internalv1.FastHeartbeatRequest) { r.Capacity = nil }},
			{"capacity.max_meetings", func(r *internalv1.FastHeartbeatRequest) { r.Capacity.MaxMeetings = 0 }},
			{"capacity.max_participants", func(r *internalv1.FastHeartbeatRequest) { r.Capacity.MaxParticipants = 0 }},
			{"capacity.current_meetings", func(r *internalv1.FastHeartbeatRequest) { r.Capacity.CurrentMeetings = 1 << 31 }},
			{"health", func(r *internalv1.FastHeartbeatRequest) { r.Health = internalv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED }},
			{"health", func(r *internalv1.FastHeartbeatRequest) { r.Health = 42 }},
			{"capacity.current_meetings", func(r *internalv1.FastHeartbeatRequest) { r.Capacity.CurrentMeetings = r.Capacity.MaxMeetings + 1 }},
			{"capacity.current_participants", func(r *internalv1.FastHeartbeatRequest) {
				r.Capacity.CurrentParticipants = r.Capacity.MaxParticipants + 1
			}},
		}
		for _, c := range hcases {
			wantCode(t, hb(c.mod), codes.InvalidArgument, c.field+":")
		}
		_, err := mc.ComprehensiveHeartbeat(ctxT(t), &internalv1.ComprehensiveHeartbeatRequest{
			ControllerId: "mc-valid", Health: healthy, CpuUsagePercent: -1,
			Capacity: &internalv1.Capacity{MaxMeetings: 1, MaxParticipants: 1},
		})
		wantCode(t, err, codes.InvalidArgument, "cpu_usage_percent:")
		_, err = mc.DeregisterMC(ctxT(t), &internalv1.DeregisterMCRequest{ControllerId: ""})
		wantCode(t, err, codes.InvalidArgument, "controller_id:")
		_, err = reader.ListMeetingControllers(ctxT(t), &internalv1.ListMeetingControllersRequest{Region: strings.Repeat("r", 51)})
		wantCode(t, err, codes.InvalidArgument, "region:")
		_, err = reader.ListMeetingControllers(ctxT(t), &internalv1.ListMeetingControllersRequest{Region: "a\x00b"})
		wantCode(t, err, codes.InvalidArgument, "region:")
		// gRPC clients refuse to send invalid UTF-8; the HTTP API's ?region= can.
		if err := checkRegion("region", "eu\xffwest"); err == nil {
			t.Fatal("checkRegion accepted invalid UTF-8")
		}
		_, err = reader.ListMeetingControllers(ctxT(t), &internalv1.ListMeetingControllersRequest{Health: 9})
		wantCode(t, err, codes.InvalidArgument, "health:")
	})
}

// A caller's value is logged bounded: a 3 MiB DeregisterMC reason once made
// one 18 MB log line (issue 11 item 7).
func TestCallerValuesAreLoggedBounded(t *testing.T) {
	e := startGC(t, migratedPostgres(t), nil)
	mc := client(t, e.grpcAddr, e.mcToken(t))
	ctx := ctxT(t)
	if _, err := mc.RegisterMC(ctx, regReq("mc-long-reason", "local")); err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("why", 1<<20)
	if _, err := mc.DeregisterMC(ctx, &internalv1.DeregisterMCRequest{ControllerId: "mc-long-reason", Reason: huge}); err != nil {
		t.Fatal(err)
	}
	found := false
	for l := range strings.SplitSeq(e.logs.String(), "\n") {
		if len(l) > 4096 {
			t.Fatalf("a log line of %d bytes: %.200s...", len(l), l)
		}
		if strings.Contains(l, "meeting controller deregistered") && strings.Contains(l, "bytes)") {
			found = true
		}
	}
	if !found {
		t.Fatal("no deregistration line saying how long the cut reason was")
	}
}

// Issue 11 item 1: every MC shares one client credential, so the token does
// not say which MC calls. A live registration is changed, heartbeated or
// deregistered only with the key RegisterMC returned to its holder.
func TestRegistrationBelongsToItsHolder(t *testing.T) {
	e := startGC(t, migratedPostgres(t), func(c *Config) { c.StalenessThreshold = 30 * time.Second })
	tok := e.mcToken(t)
	victim, attacker := client(t, e.grpcAddr, tok), client(t, e.grpcAddr, tok)
	ctx := ctxT(t)
	resp, err := victim.RegisterMC(ctx, regReq("mc-victim", "id"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.RegistrationKey == "" {
		t.Fatal("RegisterMC returned no registration key")
	}
	var stored string
	if err := e.pool.QueryRow(ctx, `SELECT registration_key_hash FROM meeting_controllers WHERE controller_id='mc-victim'`).Scan(&stored); err != nil ||
		stored != HashKey(resp.RegistrationKey) || strings.Contains(stored, resp.RegistrationKey) {
		t.Fatalf("stored %q, %v: want only the SHA-256 of the key", stored, err)
	}
	if _, err := victim.FastHeartbeat(ctx, fastHB("mc-victim", 1, healthy)); err != nil {
		t.Fatal(err)
	}
	row := func() (ep, health string) {
		t.Helper()
		if err := e.pool.QueryRow(ctx, `SELECT grpc_endpoint, health_status FROM meeting_controllers WHERE controller_id='mc-victim'`).Scan(&ep, &health); err != nil {
			t.Fatal(err)
		}
		return ep, health
	}

	hijack := regReq("mc-victim", "id")
	hijack.GrpcEndpoint = "http://127.0.0.1:6666"
	_, err = attacker.RegisterMC(ctx, hijack)
	wantCode(t, err, codes.PermissionDenied, "registration_key")
	hijack.RegistrationKey = "made-up-key"
	_, err = attacker.RegisterMC(ctx, hijack)
	wantCode(t, err, codes.PermissionDenied, "registration_key")
	_, err = attacker.FastHeartbeat(ctx, fastHB("mc-victim", 0, unhealthy))
	wantCode(t, err, codes.PermissionDenied, "registration_key")
	hb := fastHB("mc-victim", 0, unhealthy)
	hb.RegistrationKey = "made-up-key"
	_, err = attacker.FastHeartbeat(ctx, hb)
	wantCode(t, err, codes.PermissionDenied, "registration_key")
	_, err = attacker.ComprehensiveHeartbeat(ctx, &internalv1.ComprehensiveHeartbeatRequest{ControllerId: "mc-victim", Health: unhealthy,
		Capacity: &internalv1.Capacity{MaxMeetings: 1, MaxParticipants: 1}})
	wantCode(t, err, codes.PermissionDenied, "registration_key")
	_, err = attacker.DeregisterMC(ctx, &internalv1.DeregisterMCRequest{ControllerId: "mc-victim", Reason: "hijack"})
	wantCode(t, err, codes.PermissionDenied, "registration_key")
	if ep, health := row(); ep != "http://127.0.0.1:50052" || health != "healthy" {
		t.Fatalf("after the attempts the victim's row is %s %s, want its own endpoint and healthy", ep, health)
	}
	if strings.Contains(e.logs.String(), resp.RegistrationKey) {
		t.Fatal("GC logged a registration key")
	}

	// The holder re-registers (restart with its key) and keeps heartbeating.
	if _, err := victim.RegisterMC(ctx, regReq("mc-victim", "id")); err != nil {
		t.Fatalf("holder re-registering: %v", err)
	}
	if _, err := victim.FastHeartbeat(ctx, fastHB("mc-victim", 1, healthy)); err != nil {
		t.Fatalf("holder heartbeat after re-registering: %v", err)
	}
	// After its own deregistration the id is free at once.
	if _, err := victim.DeregisterMC(ctx, &internalv1.DeregisterMCRequest{ControllerId: "mc-victim", Reason: "drain"}); err != nil {
		t.Fatal(err)
	}
	if _, err := attacker.RegisterMC(ctx, regReq("mc-victim", "id")); err != nil {
		t.Fatalf("registering a deregistered id: %v", err)
	}

	// A stale registration may be taken over by a restarted process.
	if _, err := victim.RegisterMC(ctx, regReq("mc-crashed", "id")); err != nil {
		t.Fatal(err)
	}
	_, err = attacker.RegisterMC(ctx, regReq("mc-crashed", "id"))
	wantCode(t, err, codes.PermissionDenied, "registration_key")
	if _, err := e.pool.Exec(ctx, `UPDATE meeting_controllers SET last_heartbeat_at = now() - interval '1 minute' WHERE controller_id='mc-crashed'`); err != nil {
		t.Fatal(err)
	}
	if _, err := attacker.RegisterMC(ctx, regReq("mc-crashed", "id")); err != nil {
		t.Fatalf("taking over a stale registration: %v", err)
	}
	_, err = victim.FastHeartbeat(ctx, fastHB("mc-crashed", 0, healthy))
	wantCode(t, err, codes.PermissionDenied, "registration_key")
}

// Issue 11 item 1: GC dials only the registering connection's own address,
// so a registration cannot point GC (or clients) at a third host.
func TestEndpointsMustBeTheCallersAddress(t *testing.T) {
	e := startGC(t, migratedPostgres(t), nil)
	mc := client(t, e.grpcAddr, e.mcToken(t))
	for field, mod := range map[string]func(r *internalv1.RegisterMCRequest){
		"grpc_endpoint":         func(r *internalv1.RegisterMCRequest) { r.GrpcEndpoint = "http://10.0.0.1:50052" },
		"webtransport_endpoint": func(r *internalv1.RegisterMCRequest) { r.WebtransportEndpoint = "https://10.0.0.9:4433" },
	} {
		r := regReq("mc-elsewhere", "src")
		mod(r)
		_, err := mc.RegisterMC(ctxT(t), r)
		wantCode(t, err, codes.PermissionDenied, field+": host must be this connection's source address 127.0.0.1")
	}
	r := regReq("mc-elsewhere", "src")
	r.GrpcEndpoint = "http://localhost:50052"
	_, err := mc.RegisterMC(ctxT(t), r)
	wantCode(t, err, codes.PermissionDenied, "grpc_endpoint: host must be")
	var n int
	if err := e.pool.QueryRow(ctxT(t), `SELECT count(*) FROM meeting_controllers WHERE controller_id='mc-elsewhere'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("refused registrations left %d rows, %v", n, err)
	}
}
