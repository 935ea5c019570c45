package localstack

import (
	"context"
	"time"

	"github.com/darktower/devstack/internal/procs"
)

// Proc is one long-running process of the local stack (internal/procs).
type Proc = procs.Proc

// Environ is the environment a child process gets (procs.Environ).
func Environ(env map[string]string) []string { return procs.Environ(env) }

// The stack's processes are tracked in its state directory.
func (l Layout) procs() procs.Dir { return procs.Dir(l.StateDir) }

func (l Layout) Start(p Proc) (int, error)                   { return l.procs().Start(p) }
func (l Layout) RunOnce(ctx context.Context, p Proc) error   { return l.procs().RunOnce(ctx, p) }
func (l Layout) Running(name string) (int, bool)             { return l.procs().Running(name) }
func (l Layout) Stop(name string, grace time.Duration) error { return l.procs().Stop(name, grace) }
func (l Layout) Tracked() []string                           { return l.procs().Tracked() }
func (l Layout) LogFile(name string) string                  { return l.procs().LogFile(name) }
