package testsupport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a throwaway redis-server with a password and AOF on.
type Redis struct {
	Port     int
	Password string
	dir      string
	cmd      *exec.Cmd
	extra    []string
	t        testing.TB
}

// RedisOption changes the generated configuration (fault tests).
type RedisOption func(*Redis)

// RedisNoPassword starts Redis without requirepass.
func RedisNoPassword() RedisOption { return func(r *Redis) { r.Password = "" } }

// RedisConfig appends raw configuration lines, e.g. "appendonly no".
func RedisConfig(lines ...string) RedisOption {
	return func(r *Redis) { r.extra = append(r.extra, lines...) }
}

// StartRedis starts redis-server on a free port; the password is in its
// config file, never on the command line. It stops when the test ends.
func StartRedis(t testing.TB, opts ...RedisOption) *Redis {
	t.Helper()
	r := &Redis{Port: FreePort(t), Password: "redis-" + RandomToken(t, 12), dir: t.TempDir(), t: t}
	for _, o := range opts {
		o(r)
	}
	conf := []string{
		"bind 127.0.0.1",
		"port " + strconv.Itoa(r.Port),
		"dir " + r.dir,
		"appendonly yes",
		"save \"\"",
		"daemonize no",
		"logfile " + filepath.Join(r.dir, "redis.log"),
	}
	if r.Password != "" {
		conf = append(conf, "requirepass "+r.Password)
	}
	conf = append(conf, r.extra...)
	if err := os.WriteFile(r.ConfigPath(), []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// ConfigPath is the redis.conf the server reads.
func (r *Redis) ConfigPath() string { return filepath.Join(r.dir, "redis.conf") }

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is a REDIS_URL with the password.
func (r *Redis) URL() string { return r.URLWithPassword(r.Password) }

// URLWithPassword builds a REDIS_URL with another password ("" for none).
func (r *Redis) URLWithPassword(pw string) string {
	if pw == "" {
		return "redis://" + r.Addr()
	}
	return fmt.Sprintf("redis://:%s@%s", pw, r.Addr())
}

// Start starts the server (again) with the same config, port and data.
func (r *Redis) Start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", r.ConfigPath())
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("redis-server: %v (is the redis-server package installed?)", err)
	}
	if err := WaitTCP(r.Addr(), 20*time.Second); err != nil {
		r.t.Fatalf("redis: %v\n%s", err, r.Log())
	}
}

// Stop stops the server; it is safe to call twice.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

// Client returns a go-redis client with the password, closed at test end.
func (r *Redis) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: r.Password})
	t.Cleanup(func() { c.Close() })
	return c
}

// Ping checks that the server answers with the password.
func (r *Redis) Ping(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: r.Password})
	defer c.Close()
	return c.Ping(ctx).Err()
}

// Log returns the server log.
func (r *Redis) Log() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	return string(b)
}

// RandomToken returns n random bytes in hex, for passwords and secrets.
func RandomToken(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
