package testsupport

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestPostgresStartsAndRestarts(t *testing.T) {
	pg := StartPostgres(t)
	var n int
	if err := pg.Conn(t).QueryRow(context.Background(), "SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("SELECT 1 = %d, %v", n, err)
	}
	pg.Stop()
	if err := WaitTCP(pg.Addr(), 200*time.Millisecond); err == nil {
		t.Fatal("postgres still accepts connections after Stop")
	}
	pg.Start()
	pg.Exec(t, "CREATE TABLE t (x int)")
}

func TestRedisPasswordAndAOF(t *testing.T) {
	r := StartRedis(t)
	ctx := context.Background()
	if err := r.Ping(ctx); err != nil {
		t.Fatalf("ping with password: %v", err)
	}
	anon := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer anon.Close()
	if err := anon.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("ping without password = %v, want NOAUTH", err)
	}
	c := r.Client(t)
	aof, err := c.ConfigGet(ctx, "appendonly").Result()
	if err != nil || aof["appendonly"] != "yes" {
		t.Fatalf("appendonly = %v, %v", aof, err)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	r.Start()
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("after restart GET k = %q, %v: AOF did not keep the data", got, err)
	}
	if err := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: "wrong"}).Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Fatalf("wrong password = %v, want WRONGPASS", err)
	}
}
