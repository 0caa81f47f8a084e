//go:build js && wasm

package jsx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall/js"
)

// BodyReader reads a ReadableStream of bytes (a fetch Response's body) as
// an io.ReadCloser. Each Read waits for one read() of the stream, from a
// goroutine; Close cancels the stream. Reads after ctx is done fail with
// ctx's error.
type BodyReader struct {
	ctx    context.Context
	reader js.Value
	buf    []byte
	done   bool
	closed bool
}

// NewBodyReader returns a reader over stream (which must not be locked).
func NewBodyReader(ctx context.Context, stream js.Value) (*BodyReader, error) {
	r, err := Try(func() js.Value { return stream.Call("getReader") })
	if err != nil {
		return nil, fmt.Errorf("locking body: %w", err)
	}
	return &BodyReader{ctx: ctx, reader: r}, nil
}

// Read implements io.Reader.
func (b *BodyReader) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if b.done {
			return 0, io.EOF
		}
		res, err := Await(b.ctx, b.reader.Call("read"))
		if err != nil {
			return 0, fmt.Errorf("reading body: %w", err)
		}
		if res.Get("done").Bool() {
			b.done = true
			continue
		}
		if b.buf, err = Bytes(res.Get("value")); err != nil {
			return 0, fmt.Errorf("reading body: %w", err)
		}
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

// Close cancels the stream if it has not ended. Safe to call twice.
func (b *BodyReader) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if !b.done {
		// The returned Promise settles on its own; a rejection is of no interest.
		_, _ = Try(func() js.Value { return b.reader.Call("cancel") })
	}
	return nil
}

// errStreamCancelled: the reader of a ReadableStream cancelled it.
var errStreamCancelled = errors.New("stream cancelled by its reader")

// NewReadableStream returns a ReadableStream whose bytes produce writes,
// pulled by the stream's reader: produce runs in a goroutine owned by the
// stream, and each Write waits until the reader asks for more, so the
// stream holds at most one chunk ahead. When produce returns nil the stream
// closes; an error errors the stream (the reader sees a network error, never
// a short body taken for whole). If the reader cancels, ctx-aware producers
// see their context cancelled (cancel is called) and Write fails.
// done, if not nil, is called with produce's result once it has returned.
func NewReadableStream(cancel context.CancelFunc, produce func(w io.Writer) error, done func(error)) js.Value {
	s := &pullStream{chunks: make(chan []byte), stop: make(chan struct{}), end: make(chan error, 1)}
	go func() { // owned by the stream; ends when produce returns
		err := produce(s)
		s.end <- err
		close(s.chunks)
		if done != nil {
			done(err)
		}
	}()
	var pull, cancelFn js.Func
	release := sync.OnceFunc(func() {
		pull.Release()
		cancelFn.Release()
	})
	pull = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ctrl := args[0]
		return NewPromise(func() (any, error) {
			b, ok := <-s.chunks
			if ok {
				// Enqueue fails only on a stream already cancelled: then
				// Write sees stop.
				_, _ = Try(func() js.Value { return ctrl.Call("enqueue", Uint8Array(b)) })
				s.ack <- struct{}{}
				return nil, nil
			}
			if err := <-s.end; err != nil {
				_, _ = Try(func() js.Value { return ctrl.Call("error", NewError(err)) })
			} else {
				_, _ = Try(func() js.Value { return ctrl.Call("close") })
			}
			release()
			return nil, nil
		})
	})
	cancelFn = js.FuncOf(func(js.Value, []js.Value) any {
		s.stopOnce.Do(func() { close(s.stop) })
		cancel()
		go func() { // drain, then release once produce has returned
			for range s.chunks {
			}
			release()
		}()
		return nil
	})
	s.ack = make(chan struct{}, 1)
	src := Object(map[string]any{"pull": pull, "cancel": cancelFn})
	strategy := Object(map[string]any{"highWaterMark": 1})
	return global.Get("ReadableStream").New(src, strategy)
}

type pullStream struct {
	chunks   chan []byte
	ack      chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	end      chan error
}

// Write hands a copy of p to the stream's reader and waits until it has
// been enqueued.
func (s *pullStream) Write(p []byte) (int, error) {
	select {
	case s.chunks <- p:
	case <-s.stop:
		return 0, errStreamCancelled
	}
	select {
	case <-s.ack: // enqueued (copied into a Uint8Array), p is free again
	case <-s.stop:
		return 0, errStreamCancelled
	}
	return len(p), nil
}
