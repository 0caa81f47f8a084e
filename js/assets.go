package hearthjs

import "embed"

// src holds the JavaScript shims, templates with markers the Handler fills.
//
//go:embed src/hearth.js src/sw.js
var src embed.FS

// dist holds what `make wasm` built (see dist/README.md).
//
//go:embed dist
var dist embed.FS
