package gc

import (
	"context"
	"time"
)

// sweep runs the staleness check every interval until ctx ends. Every
// replica runs it; Store.Sweep lets only one of them act at a time.
func (a *App) sweep(ctx context.Context) {
	t := time.NewTicker(a.cfg.StalenessInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.SweepOnce(ctx)
		a.pruneConns(ctx)
	}
}

// pruneConns closes this replica's connections to controllers that left.
// Every replica runs it: the connections are its own, not shared state.
func (a *App) pruneConns(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	live, liveIDs, err := a.store.Live(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("listing live endpoints failed; connections kept", "error", err)
		}
		return
	}
	if n := a.joiner.prune(live, liveIDs); n > 0 {
		a.log.Info("closed connections to departed meeting controllers", "closed", n, "open", a.joiner.open())
	}
}

// SweepOnce runs one staleness check and records what it changed.
func (a *App) SweepOnce(ctx context.Context) SweepResult {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.StalenessInterval+5*time.Second)
	defer cancel()
	r, err := a.store.Sweep(ctx, a.cfg.StalenessThreshold, a.cfg.UnhealthyRetention)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("staleness sweep failed", "error", err)
		}
		return r
	}
	a.metrics.staleMarked.Add(float64(r.MarkedUnhealthy))
	if r.MarkedUnhealthy+r.DrainingRemoved+r.UnhealthyPurged > 0 {
		a.log.Info("staleness sweep", "marked_unhealthy", r.MarkedUnhealthy,
			"draining_removed", r.DrainingRemoved, "unhealthy_purged", r.UnhealthyPurged,
			"threshold", a.cfg.StalenessThreshold.String())
	}
	return r
}
