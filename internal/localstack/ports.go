package localstack

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CheckPort returns nil when port can be bound on 127.0.0.1 (TCP, or UDP
// when udp), and otherwise an error naming what holds it.
func CheckPort(port int, udp bool) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var err error
	if udp {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", addr); err == nil {
			c.Close()
			return nil
		}
	} else {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			ln.Close()
			return nil
		}
	}
	proto := "tcp"
	if udp {
		proto = "udp"
	}
	return fmt.Errorf("port %d/%s is in use by %s; stop it or move the whole set with `make up PORT_BASE=<port>`", port, proto, PortHolder(port, udp))
}

// PortHolder names the process listening on port, from /proc, or says it
// could not tell (another user's process, or no /proc).
func PortHolder(port int, udp bool) string {
	files := []string{"/proc/net/tcp", "/proc/net/tcp6"}
	if udp {
		files = []string{"/proc/net/udp", "/proc/net/udp6"}
	}
	inodes := map[string]bool{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			p, err := strconv.ParseUint(hexPort, 16, 16)
			// TCP listeners are in state 0A; UDP sockets have no listen state.
			if err != nil || int(p) != port || (!udp && fields[3] != "0A") {
				continue
			}
			inodes[fields[9]] = true
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return "an unknown process"
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		link, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
			pid := strings.Split(fd, "/")[2]
			cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
			name := strings.Fields(strings.ReplaceAll(string(cmd), "\x00", " "))
			if len(name) > 0 {
				return fmt.Sprintf("pid %s (%s)", pid, filepath.Base(name[0]))
			}
			return "pid " + pid
		}
	}
	return "a process this user cannot inspect"
}
