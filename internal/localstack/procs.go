package localstack

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
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
func (l Layout) Launch(p Proc) (*procs.Child, error)         { return l.procs().Launch(p) }
func (l Layout) Check(name string) procs.State               { return l.procs().Check(name) }
func (l Layout) RunOnce(ctx context.Context, p Proc) error   { return l.procs().RunOnce(ctx, p) }
func (l Layout) Running(name string) (int, bool)             { return l.procs().Running(name) }
func (l Layout) Stop(name string, grace time.Duration) error { return l.procs().Stop(name, grace) }
func (l Layout) Tracked() []string                           { return l.procs().Tracked() }
func (l Layout) LogFile(name string) string                  { return l.procs().LogFile(name) }

// stopUnrecorded stops the processes a devstack killed before it recorded
// them left running, and says so.
func (l Layout) stopUnrecorded(out io.Writer) error {
	found, err := l.procs().StopUnrecorded(20 * time.Second)
	for _, name := range slices.Sorted(maps.Keys(found)) {
		fmt.Fprintf(out, "  %-18s stopped pid %v: started by a devstack that was killed before it recorded it\n", name, found[name])
	}
	return err
}
