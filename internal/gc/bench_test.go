package gc

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/auth"
)

// simulatedMCs is how many meeting controllers heartbeat at once.
const simulatedMCs = 100

// BenchmarkHeartbeat measures the GC heartbeat path under 100 concurrent
// simulated MCs, and beside it, in the same run and on the same pool, the
// bare SQL UPDATE the handler issues (no gRPC, no auth).
//
//	go test -run '^$' -bench Heartbeat -benchtime 5s -count 3 ./internal/gc/
func BenchmarkHeartbeat(b *testing.B) {
	pg := migratedPostgres(b)
	e := startGC(b, pg, nil)
	cpu := newCPUMeter(b, pg.DataDir())
	ids := make([]string, simulatedMCs)
	clients := make([]internalv1.GlobalControllerServiceClient, simulatedMCs)
	keyHashes := make([]string, simulatedMCs)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-mc-%03d", i)
		// Each simulated MC has its own token and its own connection, as real pods do.
		tok := e.iss.Token(b, ids[i], auth.ScopeWriteGC, auth.ServiceMeetingController)
		clients[i] = client(b, e.grpcAddr, tok)
		resp, err := clients[i].RegisterMC(ctxT(b), regReq(ids[i], "bench"))
		if err != nil {
			b.Fatal(err)
		}
		keyHashes[i] = HashKey(resp.RegistrationKey)
	}

	b.Run("GRPC", func(b *testing.B) {
		runHeartbeats(b, cpu, func(ctx context.Context, mc int, n uint32) error {
			_, err := clients[mc].FastHeartbeat(ctx, fastHB(ids[mc], n%10, healthy))
			return err
		})
	})
	b.Run("BareUpdate", func(b *testing.B) {
		runHeartbeats(b, cpu, func(ctx context.Context, mc int, n uint32) error {
			_, err := e.pool.Exec(ctx, HeartbeatSQL, ids[mc], int32(10), int32(n%10), int32(100), int32(n%10*3), "healthy", keyHashes[mc])
			return err
		})
	})
}

// runHeartbeats calls beat from simulatedMCs goroutines (one per simulated
// MC) and reports throughput and latency percentiles.
func runHeartbeats(b *testing.B, cpu *cpuMeter, beat func(ctx context.Context, mc int, n uint32) error) {
	b.SetParallelism((simulatedMCs + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var (
		next      atomic.Int32
		mu        sync.Mutex
		latencies []time.Duration
	)
	ctx := context.Background()
	b.ResetTimer()
	self0, pg0 := cpu.self(), cpu.postgres()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		mc := int(next.Add(1)-1) % simulatedMCs
		local := make([]time.Duration, 0, 1024)
		var n uint32
		for pb.Next() {
			t0 := time.Now()
			if err := beat(ctx, mc, n); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t0))
			n++
		}
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	selfCPU, pgCPU := cpu.self()-self0, cpu.postgres()-pg0
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds())
	}
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "heartbeats/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	n := float64(len(latencies))
	b.ReportMetric(float64(selfCPU.Microseconds())/n, "go-cpu-µs/op")
	b.ReportMetric(float64(pgCPU.Microseconds())/n, "pg-cpu-µs/op")
}
