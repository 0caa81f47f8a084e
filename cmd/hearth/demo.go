package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/hosting"
)

//go:embed all:demosite
var demoSite embed.FS

func newDemoCmd() *cobra.Command {
	var siteDir, workDir, listen string
	var seeders int
	cmd := &cobra.Command{
		Use:   "demo [--site DIR] [--dir WORKDIR] [--listen ADDR]",
		Short: "Run a whole swarm on loopback: an origin, a relay and two seeders serving the embedded demo site (or --site DIR)",
		Long: `Demo publishes the embedded demo site (or --site DIR) with a fresh site key and
starts, as child processes on loopback, an origin with the browser client, a relay,
and --seeders seeders that replicate the site and serve it over HTTP and WebRTC.
It prints the URL to open; pages show live how many bytes came from peers, from
the cache and from the origin. Ctrl-C stops everything. Logs and stores are kept
in --dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if workDir == "" {
				d, err := os.MkdirTemp("", "hearth-demo-")
				if err != nil {
					return err
				}
				workDir = d
			}
			if siteDir == "" {
				siteDir = filepath.Join(workDir, "site")
				if err := extractDemoSite(siteDir); err != nil {
					return err
				}
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			d := &demo{bin: self, dir: workDir, out: cmd.OutOrStdout()}
			return d.run(cmd.Context(), siteDir, listen, seeders)
		},
	}
	cmd.Flags().StringVar(&siteDir, "site", "", "directory to publish (default: the embedded demo site)")
	cmd.Flags().StringVar(&workDir, "dir", "", "working directory for the key, stores and logs (default: a new temporary directory)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "the origin's address (port 0: any free port)")
	cmd.Flags().IntVar(&seeders, "seeders", 2, "number of seeders")
	return cmd
}

// extractDemoSite writes the embedded demo site to dir.
func extractDemoSite(dir string) error {
	sub, err := fs.Sub(demoSite, "demosite")
	if err != nil {
		return err
	}
	return os.CopyFS(dir, sub)
}

// demo runs the swarm's nodes as child processes of this binary.
type demo struct {
	bin, dir string
	out      io.Writer
	procs    []*child
}

// child is a running node; done is closed once it has exited and err set.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (d *demo) run(ctx context.Context, siteDir, listen string, seeders int) (err error) {
	defer func() {
		if serr := d.stopAll(); err == nil {
			err = serr
		}
	}()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	keyFile := filepath.Join(d.dir, "site.key")
	_ = os.Remove(keyFile)
	if err := node.WriteKeyFile(keyFile, key); err != nil {
		return err
	}
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey))

	relayAddr, err := d.start(ctx, "relay", "relay", "--listen", "127.0.0.1:0")
	if err != nil {
		return err
	}
	relayURL := "ws://" + relayAddr + "/ws"
	if err := waitHealthy(ctx, "http://"+relayAddr+"/healthz"); err != nil {
		return fmt.Errorf("relay: %w (log: %s)", err, d.logPath("relay"))
	}

	// The seeders' addresses are chosen first, so that the origin's
	// dashboard can read their metrics.
	seederAddrs := make([]string, seeders)
	originArgs := []string{"origin", "--store", filepath.Join(d.dir, "origin-store"),
		"--key", keyFile, "--site", siteDir, "--watch", "--listen", listen, "--relay", relayURL}
	for i := range seederAddrs {
		if seederAddrs[i], err = freeLoopbackAddr(); err != nil {
			return err
		}
		originArgs = append(originArgs, "--dashboard-peer", "http://"+seederAddrs[i])
	}
	originAddr, err := d.start(ctx, "origin", originArgs...)
	if err != nil {
		return err
	}
	originURL := "http://" + originAddr
	if err := waitHealthy(ctx, originURL+"/healthz"); err != nil {
		return fmt.Errorf("origin: %w (log: %s)", err, d.logPath("origin"))
	}
	var seederURLs []string
	for i := 1; i <= seeders; i++ {
		name := fmt.Sprintf("seeder%d", i)
		addr, err := d.start(ctx, name, "seed", site.String(), "--origin", originURL,
			"--store", filepath.Join(d.dir, name+"-store"), "--listen", seederAddrs[i-1], "--relay", relayURL)
		if err != nil {
			return err
		}
		seederURLs = append(seederURLs, "http://"+addr)
	}
	for i, u := range seederURLs {
		if err := waitHealthy(ctx, u+"/healthz"); err != nil {
			return fmt.Errorf("seeder%d: %w (log: %s)", i+1, err, d.logPath(fmt.Sprintf("seeder%d", i+1)))
		}
	}
	fmt.Fprintf(d.out, "site     %s\n", site)
	fmt.Fprintf(d.out, "relay    %s\n", relayURL)
	for i, u := range seederURLs {
		fmt.Fprintf(d.out, "seeder%d  %s\n", i+1, u)
	}
	fmt.Fprintf(d.out, "logs     %s\n", d.dir)
	fmt.Fprintf(d.out, "\nopen %s/  (edit %s and the site republishes; Ctrl-C stops)\n", originURL, siteDir)
	fmt.Fprintf(d.out, "dashboard %s%s  (the operator's view: offload, bytes by source, visitors, records)\n", originURL, hosting.DashboardPrefix)
	if seeders > 0 {
		fmt.Fprintf(d.out, "stop the origin (kill %d) and the site lives on: visitors' service workers fetch it from the seeders\n", d.pid("origin"))
	}
	exits := d.exited()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(d.out, "stopping")
			return nil
		case ex := <-exits:
			if ex.name != "origin" {
				return ex.err
			}
			// The case the swarm exists for: keep the relay and the
			// seeders up, and say what still serves the site.
			if len(seederURLs) == 0 {
				return ex.err
			}
			fmt.Fprintf(d.out, "the origin exited (%v); the relay and %d seeder(s) keep serving the site: reload %s/ in a browser that visited it, or open a seeder at %s/\n",
				ex.err, len(seederURLs), originURL, seederURLs[0])
		}
	}
}

// pid returns the process ID of the child called name, or 0.
func (d *demo) pid(name string) int {
	for _, ch := range d.procs {
		if ch.name == name {
			return ch.cmd.Process.Pid
		}
	}
	return 0
}

func (d *demo) logPath(name string) string { return filepath.Join(d.dir, name+".log") }

// start runs `hearth args... --addr-file F` with its output in name.log
// and returns the address it listens on.
func (d *demo) start(ctx context.Context, name string, args ...string) (string, error) {
	addrFile := filepath.Join(d.dir, name+".addr")
	_ = os.Remove(addrFile)
	logf, err := os.Create(d.logPath(name))
	if err != nil {
		return "", err
	}
	defer logf.Close()
	c := exec.Command(d.bin, append(args, "--addr-file", addrFile)...)
	c.Stdout, c.Stderr = logf, logf
	// Children die with the demo even if it is killed, and get Ctrl-C from
	// it rather than from the terminal, so they stop in order.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := c.Start(); err != nil {
		return "", fmt.Errorf("starting %s: %w", name, err)
	}
	ch := &child{name: name, cmd: c, done: make(chan struct{})}
	go func() { ch.err = c.Wait(); close(ch.done) }()
	d.procs = append(d.procs, ch)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(addrFile); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-ch.done:
			return "", fmt.Errorf("%s exited: %v (log: %s)", name, ch.err, d.logPath(name))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("%s did not start listening in 30 s (log: %s)", name, d.logPath(name))
}

// exit is a child that exited on its own.
type exit struct {
	name string
	err  error // says which child, how, and where its log is
}

// exited reports each child that exits on its own, in the order they exit.
func (d *demo) exited() <-chan exit {
	out := make(chan exit, len(d.procs))
	for _, ch := range d.procs {
		go func() {
			<-ch.done
			out <- exit{name: ch.name, err: fmt.Errorf("%s exited: %v (log: %s)", ch.name, ch.err, d.logPath(ch.name))}
		}()
	}
	return out
}

// stopAll sends SIGTERM to every child, newest first, and waits up to 10 s
// for each before killing it.
func (d *demo) stopAll() error {
	var errs []error
	for i := len(d.procs) - 1; i >= 0; i-- {
		ch := d.procs[i]
		_ = ch.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-ch.done:
		case <-time.After(10 * time.Second):
			_ = ch.cmd.Process.Kill()
			<-ch.done
			errs = append(errs, fmt.Errorf("%s did not stop in 10 s", ch.name))
		}
	}
	return errors.Join(errs...)
}

// waitHealthy polls url until it answers 200, for up to 60 s.
func waitHealthy(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after 60 s: %s", last)
}

// freeLoopbackAddr returns a loopback address with a port free right now.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
