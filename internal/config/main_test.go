package config

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/logging"
	"github.com/darktower/devstack/internal/secret"
)

type testConfig struct{ DB secret.Value }

func loadTest(r *Reader) (testConfig, error) {
	c := testConfig{DB: r.DatabaseURL()}
	return c, r.Err()
}

func TestMainExitCodes(t *testing.T) {
	good := map[string]string{"DATABASE_URL": "postgres://u:topsecretpw@h:5432/db"}
	cases := []struct {
		name     string
		env      map[string]string
		run      func(context.Context, testConfig, *slog.Logger) error
		code     int
		stderr   string // substring of the one stderr line, "" for none
		log, not string // substring the log must (not) contain
	}{
		{"bad config", map[string]string{"DATABASE_URL": "mysql://u:topsecretpw@h:1/x"},
			func(context.Context, testConfig, *slog.Logger) error { t.Error("run called"); return nil },
			2, "config: DATABASE_URL: expected scheme", "", "topsecret"},
		{"run fails", good,
			func(_ context.Context, c testConfig, _ *slog.Logger) error {
				return errors.New("boom " + c.DB.String())
			},
			1, "", `"msg":"svc stopped","service":"svc","error":"boom [REDACTED]"`, "topsecret"},
		{"clean stop", good,
			func(_ context.Context, _ testConfig, log *slog.Logger) error { log.Info("drained"); return nil },
			0, "", `"msg":"drained","service":"svc"`, "stopped"},
		{"signal", good,
			func(ctx context.Context, _ testConfig, _ *slog.Logger) error {
				// Main's handler is installed, so the signal cancels ctx
				// instead of killing the test.
				if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
					return err
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(5 * time.Second):
					return errors.New("SIGTERM did not cancel ctx")
				}
			},
			0, "", "", "stopped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr, logs bytes.Buffer
			code := exitCode(FromMap(c.env), &stderr, func() *slog.Logger { return logging.NewTo(&logs, "svc", "info") }, "svc", loadTest, c.run)
			if code != c.code {
				t.Errorf("exit code %d, want %d", code, c.code)
			}
			out := stderr.String()
			if c.stderr == "" && out != "" || c.stderr != "" && (!strings.Contains(out, c.stderr) || strings.Count(out, "\n") != 1) {
				t.Errorf("stderr %q, want one line containing %q", out, c.stderr)
			}
			if !strings.Contains(logs.String(), c.log) || c.not != "" && strings.Contains(out+logs.String(), c.not) {
				t.Errorf("logs %q: want %q, not %q", logs.String(), c.log, c.not)
			}
		})
	}
}

func TestDatabaseURLAndShutdownGrace(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"", "config: DATABASE_URL: required but not set"},
		{"mysql://u:topsecretpw@h:1/x", "config: DATABASE_URL: expected scheme postgres or postgresql"},
		{"u:topsecretpw@nohost", "config: DATABASE_URL: expected an absolute URL like postgres://host:port"},
		{"postgresql://u:topsecretpw@h:5432/db", ""},
	} {
		r := FromMap(map[string]string{"DATABASE_URL": c.url})
		v := r.DatabaseURL()
		err := r.Err()
		if c.want == "" {
			if err != nil || v.Reveal() != c.url {
				t.Errorf("%q: %v, %q", c.url, err, v.Reveal())
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "topsecret") {
			t.Errorf("%q: error %v, want %q", c.url, err, c.want)
		}
	}

	r := FromMap(map[string]string{"X_SHUTDOWN_GRACE": "3s", "Y_SHUTDOWN_GRACE": "20"})
	if g := r.ShutdownGrace("X_SHUTDOWN_GRACE"); g != 3*time.Second {
		t.Errorf("X_SHUTDOWN_GRACE = %v", g)
	}
	if g := r.ShutdownGrace("UNSET_SHUTDOWN_GRACE"); g != DefaultShutdownGrace {
		t.Errorf("default grace = %v", g)
	}
	if g := r.ShutdownGrace("Y_SHUTDOWN_GRACE"); g != DefaultShutdownGrace || r.Err() == nil || !strings.Contains(r.Err().Error(), "Y_SHUTDOWN_GRACE") {
		t.Errorf("malformed grace = %v, %v", g, r.Err())
	}
}
