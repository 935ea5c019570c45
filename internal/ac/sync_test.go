package ac

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/secret"
)

type row struct {
	hash, serviceType, scopes string
	active                    bool
	updated                   time.Time
}

func TestSyncStoresHashesAndDoesNotChurn(t *testing.T) {
	ctx := context.Background()
	_, pool := migratedPostgres(t)
	mc := client(t, "meeting-controller", auth.ServiceMeetingController, auth.ScopeWriteGC)
	gc := client(t, "global-controller", auth.ServiceGlobalController, auth.ScopeWriteMC)
	clients := []Client{mc, gc}

	rows := func() map[string]row {
		t.Helper()
		out := map[string]row{}
		rs, err := pool.Query(ctx, "SELECT client_id, secret_hash, service_type, scopes, active, updated_at FROM service_clients")
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		for rs.Next() {
			var id string
			var r row
			if err := rs.Scan(&id, &r.hash, &r.serviceType, &r.scopes, &r.active, &r.updated); err != nil {
				t.Fatal(err)
			}
			out[id] = r
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}

	res, err := SyncClients(ctx, pool, clients)
	if err != nil || res.Created != 2 {
		t.Fatalf("first sync: %+v, %v", res, err)
	}
	first := rows()
	for _, c := range clients {
		r := first[c.ID]
		if !strings.HasPrefix(r.hash, "$2") || bcrypt.CompareHashAndPassword([]byte(r.hash), []byte(c.Secret.Reveal())) != nil {
			t.Fatalf("%s: stored hash %q is not a bcrypt hash of the secret", c.ID, r.hash)
		}
		if !r.active || r.serviceType != c.ServiceType || r.scopes != strings.Join(c.Scopes, " ") {
			t.Fatalf("%s: row %+v", c.ID, r)
		}
	}
	// The plaintext appears nowhere in the table.
	var dump string
	if err := pool.QueryRow(ctx, "SELECT string_agg(t::text, '|') FROM service_clients t").Scan(&dump); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if strings.Contains(dump, c.Secret.Reveal()) {
			t.Fatalf("plaintext secret of %s stored: %s", c.ID, dump)
		}
	}

	// A restart syncs the same file: nothing is rewritten.
	res, err = SyncClients(ctx, pool, clients)
	if err != nil || res.Unchanged != 2 || res.Created+res.Rehashed+res.Updated+res.Deactivated != 0 {
		t.Fatalf("re-sync: %+v, %v", res, err)
	}
	if again := rows(); again[mc.ID] != first[mc.ID] || again[gc.ID] != first[gc.ID] {
		t.Fatalf("re-sync changed rows:\n%+v\n%+v", first, again)
	}

	// Two replicas starting together both succeed and leave valid hashes.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			_, err := SyncClients(ctx, pool, clients)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent sync: %v", err)
		}
	}
	if again := rows(); again[mc.ID].hash != first[mc.ID].hash {
		t.Fatal("concurrent re-sync rehashed an unchanged secret")
	}

	// A new secret is rehashed; a changed scope list is updated; a client
	// missing from the file becomes inactive.
	mc2 := mc
	mc2.Secret = secret.New("rotated-" + mc.Secret.Reveal())
	res, err = SyncClients(ctx, pool, []Client{mc2})
	if err != nil || res.Rehashed != 1 || res.Deactivated != 1 {
		t.Fatalf("rotation sync: %+v, %v", res, err)
	}
	now := rows()
	if bcrypt.CompareHashAndPassword([]byte(now[mc.ID].hash), []byte(mc2.Secret.Reveal())) != nil {
		t.Fatal("rotated secret not rehashed")
	}
	if now[gc.ID].active {
		t.Fatal("client missing from the file still active")
	}
	gc2 := gc
	gc2.Scopes = []string{auth.ScopeWriteMC, auth.ScopeReadGC}
	res, err = SyncClients(ctx, pool, []Client{mc2, gc2})
	if err != nil || res.Updated != 1 || res.Unchanged != 1 {
		t.Fatalf("re-add sync: %+v, %v", res, err)
	}
	if r := rows()[gc.ID]; !r.active || r.scopes != "service.write.mc service.read.gc" || r.hash != first[gc.ID].hash {
		t.Fatalf("re-added client row %+v", r)
	}
}
