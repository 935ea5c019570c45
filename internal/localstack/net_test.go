package localstack_test

import (
	"net"
	"strconv"
)

type net0 struct{}

func (net0) listen(port int) (net.Listener, error) {
	return net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
}
