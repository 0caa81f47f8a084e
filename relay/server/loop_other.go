//go:build !linux

package relayserver

import (
	"errors"
	"net"
)

// Without epoll every connection runs in blocking mode.

const loopsSupported = false

type loop struct{}

func newLoop(*Server) (*loop, error)         { return nil, errors.New("event loops need Linux") }
func detach(net.Conn) (int, bool)            { return -1, false }
func (l *loop) add(*conn, []byte)            {}
func (l *loop) shutdown()                    {}
func (l *loop) run()                         {}
func (l *loop) remove(*conn)                 {}
func (l *loop) watchWrite(*conn, bool) error { return nil }
func writeFD(int, []byte) (int, error)       { return 0, errors.ErrUnsupported }
func shutdownWrite(int)                      {}
func shutdownBoth(int)                       {}
func closeFD(int)                            {}
