//go:build js && wasm

package jsx

import (
	"bytes"
	"context"
	"errors"
	"io"
	"syscall/js"
	"testing"
	"time"
)

func TestPromiseRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := Await(ctx, NewPromise(func() (any, error) { return 42, nil }))
	if err != nil || v.Int() != 42 {
		t.Fatalf("resolved: %v %v", v, err)
	}
	_, err = Await(ctx, NewPromise(func() (any, error) { return nil, errors.New("boom") }))
	if !errors.Is(err, ErrJS) || err.Error() != "javascript error: Error: boom" {
		t.Fatalf("rejected: %v", err)
	}
	// Not a promise: returned as is.
	if v, err := Await(ctx, js.ValueOf(7)); err != nil || v.Int() != 7 {
		t.Fatalf("plain value: %v %v", v, err)
	}
	// A promise that never settles gives up with ctx.
	never := promiseCtr.New(js.FuncOf(func(js.Value, []js.Value) any { return nil }))
	short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	if _, err := Await(short, never); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("never settling: %v", err)
	}
}

func TestTry(t *testing.T) {
	_, err := Try(func() js.Value { return global.Get("JSON").Call("parse", "{") })
	if !errors.Is(err, ErrJS) || ErrorName(err) != "" && ErrorName(err) != "SyntaxError" {
		t.Fatalf("JSON.parse('{'): %v", err)
	}
}

func TestBytes(t *testing.T) {
	b := []byte{1, 2, 3, 250}
	u := Uint8Array(b)
	for _, v := range []js.Value{u, u.Get("buffer"), global.Get("DataView").New(u.Get("buffer"))} {
		got, err := Bytes(v)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("Bytes: %v %v", got, err)
		}
	}
	if _, err := Bytes(js.ValueOf("x")); !errors.Is(err, ErrJS) {
		t.Fatalf("a string: %v", err)
	}
}

// A ReadableStream made by NewReadableStream reads back through
// BodyReader, and an error in the producer errors the stream.
func TestStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := bytes.Repeat([]byte("hearth "), 100000)
	var done error = errors.New("not called")
	doneCh := make(chan struct{})
	s := NewReadableStream(func() {}, func(w io.Writer) error {
		for p := want; len(p) > 0; {
			n := min(len(p), 65536)
			if _, err := w.Write(p[:n]); err != nil {
				return err
			}
			p = p[n:]
		}
		return nil
	}, func(err error) { done = err; close(doneCh) })
	r, err := NewBodyReader(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, err %v", len(got), err)
	}
	<-doneCh
	if done != nil {
		t.Fatalf("done: %v", done)
	}

	s = NewReadableStream(func() {}, func(w io.Writer) error {
		if _, err := w.Write([]byte("partial")); err != nil {
			return err
		}
		return errors.New("source failed")
	}, nil)
	r, _ = NewBodyReader(ctx, s)
	got, err = io.ReadAll(r)
	if err == nil || string(got) != "partial" {
		t.Fatalf("errored stream: %q, %v", got, err)
	}

	// The reader cancels: the producer's Write fails and cancel is called.
	cancelled := make(chan struct{})
	produced := make(chan error, 1)
	s = NewReadableStream(func() { close(cancelled) }, func(w io.Writer) error {
		for {
			if _, err := w.Write(make([]byte, 1024)); err != nil {
				produced <- err
				return err
			}
		}
	}, nil)
	r, _ = NewBodyReader(ctx, s)
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	select {
	case <-cancelled:
	case <-ctx.Done():
		t.Fatal("cancel not called")
	}
	if err := <-produced; !errors.Is(err, errStreamCancelled) {
		t.Fatalf("producer after cancel: %v", err)
	}
}
