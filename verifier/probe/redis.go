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
)

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
		return Failed(classify.At(addr, classify.Failf("redis.auth-not-enforced", "PING without a password answered PONG")), "no password: PONG")
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
		return Failed(classify.At(addr, classify.Failf("redis.wrong-password-accepted", "PING with a made-up password answered PONG")), strings.Join(obs, ", "))
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
		return Failed(classify.At(addr, classify.Failf("redis.loading", "Redis is still loading its data")), obs)
	case f("aof_enabled") != "1":
		return Failed(classify.At(addr, classify.Failf("redis.aof-off", "append-only file is off (aof_enabled:%s)", f("aof_enabled"))), obs)
	case f("aof_last_write_status") != "ok":
		return Failed(classify.At(addr, classify.Failf("redis.aof-write-failed", "aof_last_write_status:%s", f("aof_last_write_status"))), obs)
	case f("aof_last_bgrewrite_status") != "ok":
		return Failed(classify.At(addr, classify.Failf("redis.aof-rewrite-failed", "aof_last_bgrewrite_status:%s", f("aof_last_bgrewrite_status"))), obs)
	}
	return Pass("%s", obs)
}

func infoField(info, key string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return v
		}
	}
	return "?"
}
