package auth_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/auth"
)

// A validator whose JWKS server was down at its start becomes ready once the
// server answers, without waiting for the periodic refresh (minutes): in a
// cluster GC and MC often start before AC.
func TestValidatorReadyAfterJWKSComesUp(t *testing.T) {
	var up atomic.Bool
	ctx, v, _ := jwksValidator(t, up.Load)
	if err := v.Ready(ctx); err == nil {
		t.Fatal("ready with the JWKS server answering 503")
	}
	up.Store(true)
	// The refresh is rate limited to one per 5 s, like a token with an unknown kid.
	deadline := time.Now().Add(15 * time.Second)
	for v.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("still not ready 15 s after the JWKS server came up")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Tokens from a key the JWKS does not hold (a hostile caller's kids) cause at
// most one fetch per rate-limit period.
func TestUnknownKeysRefreshRateLimited(t *testing.T) {
	ctx, v, fetches := jwksValidator(t, func() bool { return true })
	if err := v.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	start := fetches.Load()
	other := newSigner(t) // a key the JWKS does not hold
	const callers = 50
	var wg sync.WaitGroup
	for range callers {
		tok, _, err := other.Sign("intruder", auth.ScopeWriteGC, auth.ServiceMeetingController, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if _, err := v.Validate(ctx, tok); err == nil {
				t.Error("a token from an unknown key validated")
			}
		})
	}
	wg.Wait()
	if n := fetches.Load() - start; n > 2 {
		t.Errorf("%d callers with unknown keys caused %d JWKS fetches, want at most 2 (one per 5 s)", callers, n)
	}
}

// jwksValidator is a validator of a JWKS server that serves a fresh signer's
// key while up() holds (503 otherwise), and the count of its fetches.
func jwksValidator(t *testing.T, up func() bool) (context.Context, *auth.Validator, *atomic.Int32) {
	t.Helper()
	s := newSigner(t)
	fetches := &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		if !up() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.JWKS())
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := auth.NewValidator(ctx, srv.URL, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return ctx, v, fetches
}
