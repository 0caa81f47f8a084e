//go:build js && wasm

// Package jsx holds the syscall/js glue the service worker and the page
// agent share: awaiting Promises from goroutines, making Promises that Go
// resolves, bytes across the boundary, and streams both ways.
//
// Every callback it hands to JavaScript returns at once: work happens in a
// goroutine, and a Promise carries the result (DESIGN.md, "Browser").
package jsx

import (
	"context"
	"errors"
	"fmt"
	"syscall/js"
)

// ErrJS wraps an exception or a rejection from JavaScript.
var ErrJS = errors.New("javascript error")

var (
	global     = js.Global()
	promiseCtr = global.Get("Promise")
	uint8Array = global.Get("Uint8Array")
	errorCtr   = global.Get("Error")
	object     = global.Get("Object")
)

// Global returns globalThis.
func Global() js.Value { return global }

// Await waits for p to settle and returns its value, or an error wrapping
// ErrJS with the rejection's message, or ctx's error (p then settles
// unobserved). A non-Promise p is returned as is. Call it from a goroutine,
// never from a js.FuncOf callback.
func Await(ctx context.Context, p js.Value) (js.Value, error) {
	if p.Type() != js.TypeObject || p.Get("then").Type() != js.TypeFunction {
		return p, nil
	}
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	var onOK, onErr js.Func
	onOK = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{v: arg0(args)}
		onOK.Release()
		onErr.Release()
		return nil
	})
	onErr = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{err: fmt.Errorf("%w: %s", ErrJS, describe(arg0(args)))}
		onOK.Release()
		onErr.Release()
		return nil
	})
	p.Call("then", onOK, onErr)
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return js.Undefined(), ctx.Err()
	}
}

func arg0(args []js.Value) js.Value {
	if len(args) == 0 {
		return js.Undefined()
	}
	return args[0]
}

// describe renders a thrown JS value: an Error's name and message, else String().
func describe(v js.Value) string {
	if v.Type() == js.TypeObject {
		if m := v.Get("message"); m.Type() == js.TypeString {
			if n := v.Get("name"); n.Type() == js.TypeString {
				return n.String() + ": " + m.String()
			}
			return m.String()
		}
	}
	if v.IsUndefined() || v.IsNull() {
		return v.Type().String()
	}
	return js.Global().Get("String").Invoke(v).String()
}

// ErrorName returns the name of a JS error wrapped in err ("QuotaExceededError"),
// or "".
func ErrorName(err error) string {
	var s string
	if err != nil {
		s = err.Error()
	}
	for _, n := range []string{"QuotaExceededError", "AbortError", "TypeError", "NotFoundError"} {
		if contains(s, n+":") {
			return n
		}
	}
	return ""
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// Try calls f, turning a JS exception (which syscall/js raises as a Go
// panic of js.Error) into an error wrapping ErrJS.
func Try(f func() js.Value) (v js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if je, ok := r.(js.Error); ok {
				err = fmt.Errorf("%w: %s", ErrJS, describe(je.Value))
				return
			}
			panic(r) // not a JS exception: a bug, keep crashing
		}
	}()
	return f(), nil
}

// NewPromise returns a Promise settled by f, which runs in a goroutine: it
// resolves with f's value, or rejects with an Error carrying f's error's
// text. The goroutine is owned by the Promise: it ends when f returns.
func NewPromise(f func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		go func() {
			v, err := f()
			if err != nil {
				reject.Invoke(NewError(err))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	p := promiseCtr.New(executor) // calls executor synchronously
	executor.Release()
	return p
}

// NewError returns a JS Error with err's text.
func NewError(err error) js.Value { return errorCtr.New(err.Error()) }

// Uint8Array returns a new Uint8Array holding a copy of b.
func Uint8Array(b []byte) js.Value {
	a := uint8Array.New(len(b))
	js.CopyBytesToJS(a, b)
	return a
}

// Bytes copies a Uint8Array, an ArrayBuffer or any TypedArray view into a
// new Go slice. Errors wrap ErrJS for other values.
func Bytes(v js.Value) ([]byte, error) {
	if v.Type() != js.TypeObject {
		return nil, fmt.Errorf("%w: %s is not bytes", ErrJS, v.Type())
	}
	if !v.InstanceOf(uint8Array) {
		switch {
		case v.InstanceOf(global.Get("ArrayBuffer")):
			v = uint8Array.New(v)
		case v.Get("buffer").Type() == js.TypeObject && v.Get("byteLength").Type() == js.TypeNumber:
			v = uint8Array.New(v.Get("buffer"), v.Get("byteOffset"), v.Get("byteLength"))
		default:
			return nil, fmt.Errorf("%w: object is not bytes", ErrJS)
		}
	}
	b := make([]byte, v.Get("byteLength").Int())
	js.CopyBytesToGo(b, v)
	return b, nil
}

// Object returns a new plain JS object with the given properties.
func Object(kv map[string]any) js.Value {
	o := object.New()
	for k, v := range kv {
		o.Set(k, v)
	}
	return o
}

// String returns v as a Go string when it is a JS string, else "".
func String(v js.Value) string {
	if v.Type() == js.TypeString {
		return v.String()
	}
	return ""
}
