package localstack

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestCheckPortNamesTheHolder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	err = CheckPort(port, false)
	if err == nil {
		t.Fatal("CheckPort on a held port succeeded")
	}
	want := "pid " + strconv.Itoa(os.Getpid())
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "PORT_BASE") {
		t.Fatalf("error %q should name %q and PORT_BASE", err, want)
	}
	ln.Close()
	if err := CheckPort(port, false); err != nil {
		t.Fatalf("port free again: %v", err)
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := CheckPort(pc.LocalAddr().(*net.UDPAddr).Port, true); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("UDP CheckPort = %v", err)
	}
}
