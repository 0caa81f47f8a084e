//go:build js && wasm

package exchange

// Paths returns nil on js: the browser keeps the candidate pair to itself
// (getStats is asynchronous; not wired).
func (t *Transport) Paths() []Path { return nil }
