package hosting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Listen listens on addr (host:port; port 0 picks a free one) and, if
// addrFile is set, writes the bound address there atomically (a temporary
// file renamed into place), for scripts and supervisors that start a node
// on port 0.
func Listen(addr, addrFile string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	if addrFile != "" {
		if err := writeFileAtomic(addrFile, []byte(ln.Addr().String()+"\n")); err != nil {
			ln.Close()
			return nil, fmt.Errorf("writing address file: %w", err)
		}
	}
	return ln, nil
}

func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".addr-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ShutdownGrace is how long Serve lets in-flight requests finish after its
// context ends, before it closes their connections: short, so a node
// stops within a second of SIGTERM even while it sends a large file or
// CAR to a client that reads slowly or not at all.
const ShutdownGrace = 500 * time.Millisecond

// NewServer returns the http.Server a node serves h with (Serve): its
// timeouts keep slow or idle clients from holding connections, each
// explained below.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler: h,
		// Slow-loris protection: a client gets 10 s to send its headers.
		ReadHeaderTimeout: 10 * time.Second,
		// Requests are GETs without bodies, but for a publish (POST): 30 s
		// to read one is generous. The publish handler moves its own read
		// deadline forward as its body arrives, past this one, and cuts a
		// body that stalls or crawls (gateway.PublishOptions).
		ReadTimeout: 30 * time.Second,
		// No WriteTimeout: event streams and large CARs legitimately last
		// long. Instead every response starts with a write deadline 30 s
		// ahead (Routes.Handler) that the gateway handlers push forward as
		// their body progresses, so a client that stops reading is cut off
		// without limiting one that reads.
		WriteTimeout: 0,
		// Keep-alive connections idle for 2 minutes are closed.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// Serve serves h on ln (with NewServer) until ctx ends, then shuts down
// gracefully: it stops accepting, calls each onShutdown (which must end
// long-lived responses such as event streams), and waits up to
// ShutdownGrace for in-flight requests before closing what remains. It
// returns nil after a shutdown caused by ctx, or the server's error.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, onShutdown ...func()) error {
	srv := NewServer(h, log)
	for _, f := range onShutdown {
		srv.RegisterOnShutdown(f)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		log.Warn("forcing shutdown", "err", err)
		_ = srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", serr)
	}
	return nil
}
