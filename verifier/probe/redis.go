package probe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
)

// The redis section's checks.
var redisChecks = []Spec{
	{ID: "redis.reachable", Enabled: hasRedis, Targets: redisAddress, Vars: redisVars, Services: redisNames, Probe: redisReachable},
	{ID: "redis.auth-enforced", Needs: []string{"redis.reachable"},
		Enabled: hasRedis, Targets: redisAddress, Vars: redisVars, Services: redisNames, Probe: redisAuthEnforced},
	{ID: "redis.persistence", Needs: []string{"redis.reachable"},
		Enabled: hasRedis, Vars: redisVars, Services: redisNames, Probe: redisPersistence,
		Targets: func(c *config.Config) []string { return withPath(redisAddress(c), c.Redis.LogFile, c.Redis.DataDir) }},
}

func hasRedis(c *config.Config) bool         { return c.Redis != nil }
func redisAddress(c *config.Config) []string { return []string{c.Redis.Address} }
func redisNames(c *config.Config) []string   { return dnsNames(c.Redis.Address) }
func redisVars(c *config.Config) map[string]string {
	return map[string]string{"ref": c.Redis.Password.ShellRef()}
}

func redisClient(t Target, password string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:            t.Cfg.Redis.Address,
		Password:        password,
		Protocol:        2, // plain AUTH: its answers (WRONGPASS, NOAUTH) are what we classify
		MaxRetries:      -1,
		PoolSize:        1,
		DisableIdentity: true, // no CLIENT SETINFO: the verifier changes nothing
	})
}

// redisReachable: PING with the configured password answers PONG.
func redisReachable(ctx context.Context, t Target, log *slog.Logger) Result {
	addr := t.Cfg.Redis.Address
	c := redisClient(t, t.Cfg.Redis.Password.Value.Reveal())
	defer c.Close()
	pong, err := c.Ping(ctx).Result()
	note := ""
	var rerr redis.Error
	if errors.As(err, &rerr) && strings.Contains(rerr.Error(), "without any password configured") {
		// The server has no password: it is reachable, and redis.auth-enforced
		// is the check that says what is wrong.
		c2 := redisClient(t, "")
		defer c2.Close()
		pong, err = c2.Ping(ctx).Result()
		note = " (the server has no password configured)"
	}
	if err != nil {
		return Failed(classify.At(addr, err), "")
	}
	ver := ""
	if info, err := c.Info(ctx, "server").Result(); err == nil {
		ver = ", redis_version " + infoField(info, "redis_version")
	}
	return Pass("%s from %s%s%s", pong, addr, ver, note)
}

// redisAuthEnforced: no password gives NOAUTH and a wrong one WRONGPASS.
func redisAuthEnforced(ctx context.Context, t Target, log *slog.Logger) Result {
	addr := t.Cfg.Redis.Address
	anon := redisClient(t, "")
	defer anon.Close()
	var obs []string
	err := anon.Ping(ctx).Err()
	switch {
	case err == nil:
		return Failed(classify.At(addr, classify.Failf(classify.RedisAuthNotEnforced, "PING without a password answered PONG")), "no password: PONG")
	case strings.HasPrefix(err.Error(), "NOAUTH"):
		obs = append(obs, "no password: NOAUTH")
	default:
		return Failed(classify.At(addr, err), "")
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	wrong := redisClient(t, "verifier-wrong-"+hex.EncodeToString(b))
	defer wrong.Close()
	err = wrong.Ping(ctx).Err()
	switch {
	case err == nil:
		return Failed(classify.At(addr, classify.Failf(classify.RedisWrongPasswordAccepted, "PING with a made-up password answered PONG")), strings.Join(obs, ", "))
	case strings.HasPrefix(err.Error(), "WRONGPASS"):
		obs = append(obs, "wrong password: WRONGPASS")
	default:
		return Failed(classify.At(addr, err), strings.Join(obs, ", "))
	}
	return Pass("%s", strings.Join(obs, ", "))
}

// redisPersistence: AOF on, last write and rewrite ok, not loading.
func redisPersistence(ctx context.Context, t Target, log *slog.Logger) Result {
	addr := t.Cfg.Redis.Address
	c := redisClient(t, t.Cfg.Redis.Password.Value.Reveal())
	defer c.Close()
	info, err := c.Info(ctx, "persistence").Result()
	if err != nil {
		return Failed(classify.At(addr, err), "")
	}
	f := func(k string) string { return infoField(info, k) }
	obs := fmt.Sprintf("loading:%s aof_enabled:%s aof_last_write_status:%s aof_last_bgrewrite_status:%s",
		f("loading"), f("aof_enabled"), f("aof_last_write_status"), f("aof_last_bgrewrite_status"))
	switch {
	case f("loading") == "1":
		return Failed(classify.At(addr, classify.Failf(classify.RedisLoading, "Redis is still loading its data")), obs)
	case f("aof_enabled") != "1":
		return Failed(classify.At(addr, classify.Failf(classify.RedisAOFOff, "append-only file is off (aof_enabled:%s)", f("aof_enabled"))), obs)
	case f("aof_last_write_status") != "ok":
		return Failed(classify.At(addr, classify.Failf(classify.RedisAOFWriteFailed, "aof_last_write_status:%s", f("aof_last_write_status"))), obs)
	case f("aof_last_bgrewrite_status") != "ok":
		return Failed(classify.At(addr, classify.Failf(classify.RedisAOFRewriteFailed, "aof_last_bgrewrite_status:%s", f("aof_last_bgrewrite_status"))), obs)
	}
	if path := t.Cfg.Redis.LogFile; path != "" {
		// INFO has no field for it: only the log says that this server
		// cut a torn tail off its AOF at start (aof-load-truncated yes).
		server, err := c.Info(ctx, "server").Result()
		if err != nil {
			return Failed(classify.At(addr, err), obs)
		}
		pid := infoField(server, "process_id")
		cut, err := aofTruncations(path, pid)
		if err != nil {
			return Failed(classify.At(addr, classify.FailVars(classify.LocalUnreadable, map[string]string{"path": path}, "reading Redis's log: %v", err)), obs)
		}
		if len(cut) > 0 {
			return Failed(classify.At(addr, classify.FailVars(classify.RedisAOFTruncated, map[string]string{"log": path},
				"Redis (pid %s) discarded the end of its AOF when it started: %s", pid, strings.Join(cut, "; "))), obs)
		}
		obs += ", no AOF truncated at start (" + path + ")"
	}
	free, err := freeSpace(t.Cfg.Redis.DataDir)
	obs = joinObs(obs, free)
	if err != nil {
		return Failed(classify.At(addr, err), obs)
	}
	return Pass("%s", obs)
}

// aofTruncations are the lines of Redis's log in which the server with
// process id pid, since it last started, truncated its AOF: Redis 7 logs
// "!!! Truncating the AOF <file> at offset <n> !!!" (older versions "the
// AOF at offset") when aof-load-truncated lets it start on a torn tail,
// and reports nothing in INFO. Each line starts "<pid>:<role> ".
func aofTruncations(path, pid string) ([]string, error) {
	tail, err := readTail(path, 4<<20)
	if err != nil {
		return nil, err
	}
	var cut []string
	for _, line := range strings.Split(tail, "\n") {
		p, _, ok := strings.Cut(line, ":")
		if !ok || p != pid {
			continue
		}
		switch {
		case strings.Contains(line, "Redis is starting"):
			cut = nil // an earlier process with the same pid
		case strings.Contains(line, "Truncating the AOF"):
			cut = append(cut, strings.TrimSpace(line))
		}
	}
	return cut, nil
}

func infoField(info, key string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return v
		}
	}
	return "?"
}
