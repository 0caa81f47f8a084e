package relayserver

import (
	"bufio"
	"net"
	"net/http"
	"sync/atomic"
)

// hijacker wraps the http.ResponseWriter handed to websocket.Accept. Once
// coder/websocket has checked the handshake and written the 101 response,
// the relay takes the connection over (it frames messages itself, see
// frame.go), so what Accept gets back is a shell: tiny bufio buffers instead
// of net/http's 4 KiB ones, and a net.Conn whose Close does nothing once the
// relay has detached it, so that discarding coder/websocket's Conn does not
// close the socket.
type hijacker struct {
	http.ResponseWriter
	conn    net.Conn // the hijacked connection
	pending []byte   // bytes the client sent after its handshake, already read by net/http
	shell   *shellConn
}

// Hijack implements http.Hijacker.
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		h.pending = append([]byte(nil), p...)
	}
	h.conn = c
	h.shell = &shellConn{Conn: c}
	return h.shell, bufio.NewReadWriter(bufio.NewReaderSize(h.shell, 16), bufio.NewWriterSize(h.shell, 16)), nil
}

// Unwrap lets http.ResponseController reach the original writer.
func (h *hijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// shellConn is the connection as coder/websocket sees it.
type shellConn struct {
	net.Conn
	detached atomic.Bool
}

// Close closes the connection unless the relay has taken it over.
func (s *shellConn) Close() error {
	if s.detached.Load() {
		return nil
	}
	return s.Conn.Close()
}
