//go:build !js

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// wsConn is a minimal WebSocket client, enough for a load generator: the
// generator must cost as little CPU as it can, since on a small machine it
// shares the cores with the relay it measures. It sends final text frames
// masked with a zero key (legal; unmasking is then a no-op), reads unmasked
// server frames and answers pings.
type wsConn struct {
	c   net.Conn
	br  *bufio.Reader
	wmu sync.Mutex
	buf []byte
}

var errClosedFrame = errors.New("close frame")

// dialWS connects to a ws:// URL from the local address laddr.
func dialWS(ctx context.Context, rawURL string, laddr net.Addr) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{LocalAddr: laddr}
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		u.RequestURI(), u.Host, base64.StdEncoding.EncodeToString(key[:]))
	if _, err := io.WriteString(c, req); err != nil {
		_ = c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 2048)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_ = c.Close()
		return nil, fmt.Errorf("upgrade: %s", resp.Status)
	}
	_ = c.SetDeadline(time.Time{})
	return &wsConn{c: c, br: br}, nil
}

// write sends p as one text frame.
func (w *wsConn) write(p []byte) error { return w.writeFrame(0x1, p) }

func (w *wsConn) writeFrame(op byte, p []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	b := w.buf[:0]
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|op, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|op, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|op, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 0, 0, 0, 0) // zero masking key
	b = append(b, p...)
	w.buf = b
	_, err := w.c.Write(b)
	return err
}

// read returns the next data message's payload, valid until the next call;
// control frames are skipped.
func (w *wsConn) read(buf []byte) ([]byte, error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return nil, err
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(w.br, e[:]); err != nil {
				return nil, err
			}
			n = int(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(w.br, e[:]); err != nil {
				return nil, err
			}
			n = int(binary.BigEndian.Uint64(e[:]))
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(w.br, buf); err != nil {
			return nil, err
		}
		switch h[0] & 0x0f {
		case 0x1, 0x2:
			return buf, nil
		case 0x8:
			return nil, errClosedFrame
		case 0x9:
			if err := w.writeFrame(0xa, buf); err != nil {
				return nil, err
			}
		}
	}
}

func (w *wsConn) close() error { return w.c.Close() }
