//go:build deps

// Package deps pins modules that packages under construction import, so
// `go mod tidy` keeps them at the versions DESIGN.md requires.
package deps

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/cockroachdb/pebble"
	_ "github.com/coder/websocket"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/hanwen/go-fuse/v2/fs"
	_ "github.com/ipld/go-car/v2"
	_ "github.com/pion/ice/v4"
	_ "github.com/pion/turn/v5"
	_ "github.com/pion/webrtc/v4"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/spf13/cobra"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/time/rate"
)
