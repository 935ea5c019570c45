package localstack

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/darktower/devstack/internal/procs"
)

// lockFile is the state directory's lock: every command that changes the
// stack (up, down, clean) holds it, so two of them never start or stop the
// same processes at once. It holds "<pid> <command>" of the holder.
func (l Layout) lockFile() string { return l.Path("lock") }

// Busy is the error of a command that found another one holding the lock.
type Busy struct {
	Pid     int
	Command string
	Dir     string
}

func (b *Busy) Error() string {
	holder := "another devstack command"
	if b.Command != "" {
		holder = "another `make " + b.Command + "`"
	}
	if b.Pid > 0 {
		holder += fmt.Sprintf(" (pid %d)", b.Pid)
	}
	return holder + " is running in " + b.Dir + "; wait for it to finish, then try again"
}

// Lock takes the state directory's lock for cmd without waiting: when
// another command holds it, it returns a *Busy naming that command at once.
// The state directory must exist. release gives the lock back.
func (l Layout) Lock(cmd string) (release func(), err error) {
	path := l.lockFile()
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("the state directory's lock %s: %w", path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, l.holder()
			}
			return nil, fmt.Errorf("the state directory's lock %s: %w", path, err)
		}
		// `make clean` removes the directory, lock file included, while
		// holding the lock; a lock on a file no longer at path locks nothing.
		var held, now syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) != nil || syscall.Stat(path, &now) != nil || held.Ino != now.Ino || held.Dev != now.Dev {
			f.Close()
			continue
		}
		_ = f.Truncate(0)
		if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+" "+cmd+"\n"), 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("the state directory's lock %s: %w", path, err)
		}
		return func() {
			_ = f.Truncate(0)
			f.Close()
		}, nil
	}
}

// holder reads who holds the lock. The holder writes its pid just after
// taking the lock, so an empty file or a pid that has exited is read again
// for a moment.
func (l Layout) holder() *Busy {
	b := &Busy{Dir: l.StateDir}
	for range 50 {
		data, _ := os.ReadFile(l.lockFile())
		pid, cmd, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
		b.Pid, _ = strconv.Atoi(pid)
		b.Command = cmd
		if b.Pid > 0 && procs.Alive(b.Pid) {
			return b
		}
		time.Sleep(10 * time.Millisecond)
	}
	return b
}
