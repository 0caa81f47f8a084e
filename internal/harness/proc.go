//go:build linux

package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds how long a node may take to listen and answer /healthz.
const StartTimeout = 30 * time.Second

// Proc is a hearth node running as a child process.
type Proc struct {
	t    testing.TB
	Name string
	// Dir is the node's own temporary directory; its store is Dir/store
	// when started with StartOrigin or StartSeeder.
	Dir  string
	args []string // without --listen and --addr-file
	Addr string   // host:port it listens on

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
	logf    *os.File
	starts  int
}

var client = &http.Client{Timeout: 10 * time.Second}

// Start runs `hearth args...` as a node named name, in dir (a fresh
// t.TempDir() when empty), listening on 127.0.0.1:0, and waits until it
// answers /healthz (with any status).
func Start(t testing.TB, name, dir string, args ...string) *Proc {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	p := &Proc{t: t, Name: name, Dir: dir, args: args, Addr: "127.0.0.1:0"}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- log of %s (last 60 lines) ---\n%s", p.Name, p.LogTail(60))
		}
	})
	p.start()
	return p
}

func (p *Proc) addrFile() string { return filepath.Join(p.Dir, "addr") }

// LogPath is the file the node's stdout and stderr go to.
func (p *Proc) LogPath() string { return filepath.Join(p.Dir, "log") }

func (p *Proc) start() {
	p.t.Helper()
	_ = os.Remove(p.addrFile())
	lf, err := os.OpenFile(p.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	args := append(slices.Clone(p.args), "--listen", p.Addr, "--addr-file", p.addrFile())
	cmd := exec.Command(Binary(p.t), args...)
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), "HEARTH_STORE="+filepath.Join(p.Dir, "store"))
	// Own process group, so signals to the test do not reach it; killed if
	// the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(lf, "=== start %d: hearth %s\n", p.starts+1, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		lf.Close()
		p.t.Fatalf("starting %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.logf, p.waitErr = cmd, done, lf, nil
	p.starts++
	p.mu.Unlock()
	go func() { // owned by p: Kill and Stop wait for done
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		lf.Close()
		close(done)
	}()
	addr := p.waitAddr()
	p.Addr = addr
	p.waitUp()
}

func (p *Proc) waitAddr() string {
	p.t.Helper()
	deadline := time.Now().Add(StartTimeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(p.addrFile()); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		if p.Exited() {
			p.t.Fatalf("%s exited before listening: %v\n%s", p.Name, p.WaitErr(), p.LogTail(30))
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatalf("%s did not write its address within %s\n%s", p.Name, StartTimeout, p.LogTail(30))
	return ""
}

func (p *Proc) waitUp() {
	p.t.Helper()
	Eventually(p.t, StartTimeout, func() (bool, string) {
		if p.Exited() {
			p.t.Fatalf("%s exited: %v\n%s", p.Name, p.WaitErr(), p.LogTail(30))
		}
		resp, err := client.Get(p.URL() + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return true, ""
	})
}

// URL is the node's base URL.
func (p *Proc) URL() string { return "http://" + p.Addr }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// WaitErr is the process's exit error once it has exited.
func (p *Proc) WaitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Kill sends SIGKILL (kill -9) and waits for the process to end.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL, 0) }

// Stop sends SIGTERM and waits up to 20 s for a graceful exit, then kills.
// It fails the test if the process exits with an error.
func (p *Proc) Stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM, 20*time.Second)
	if err := p.WaitErr(); err != nil {
		p.t.Errorf("%s exited with %v after SIGTERM\n%s", p.Name, err, p.LogTail(20))
	}
}

func (p *Proc) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
			return
		case <-time.After(grace):
			_ = cmd.Process.Kill()
		}
	}
	<-done
}

// Restart starts the process again with the same arguments (and extra
// ones appended) on the same address, and waits for it.
func (p *Proc) Restart(extra ...string) {
	p.t.Helper()
	if !p.Exited() {
		p.t.Fatalf("restarting %s while it runs", p.Name)
	}
	p.args = append(p.args, extra...)
	p.start()
}

// SetArgs replaces the arguments used by the next Restart.
func (p *Proc) SetArgs(args ...string) { p.args = args }

// Args returns the arguments the process was started with (without
// --listen and --addr-file).
func (p *Proc) Args() []string { return slices.Clone(p.args) }

// Log returns the node's log so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath())
	return string(b)
}

// LogTail returns the last n lines of the log.
func (p *Proc) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Get GETs path from the node and returns the status and body.
func (p *Proc) Get(path string) (int, []byte, error) {
	resp, err := client.Get(p.URL() + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	return resp.StatusCode, b, err
}

// Health returns /healthz's status and decoded JSON body.
func (p *Proc) Health() (int, map[string]any, error) {
	code, b, err := p.Get("/healthz")
	if err != nil {
		return 0, nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return code, nil, fmt.Errorf("healthz: %v: %s", err, b)
	}
	return code, m, nil
}

// Metrics returns every sample of /metrics, keyed by its series as
// written: `name` or `name{label="v",...}`.
func (p *Proc) Metrics() (map[string]float64, error) {
	code, b, err := p.Get("/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("metrics: status %d", code)
	}
	return ParseMetrics(string(b))
}

// ParseMetrics parses the Prometheus text format's samples.
func ParseMetrics(text string) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// Metric returns one series' value (0 when absent), failing the test if
// the metrics cannot be read.
func (p *Proc) Metric(series string) float64 {
	p.t.Helper()
	m, err := p.Metrics()
	if err != nil {
		p.t.Fatalf("%s: %v", p.Name, err)
	}
	return m[series]
}

// WaitMetric waits until cond holds for series, failing after timeout.
func (p *Proc) WaitMetric(series string, timeout time.Duration, cond func(float64) bool) float64 {
	p.t.Helper()
	var v float64
	Eventually(p.t, timeout, func() (bool, string) {
		if p.Exited() {
			p.t.Fatalf("%s exited: %v\n%s", p.Name, p.WaitErr(), p.LogTail(30))
		}
		m, err := p.Metrics()
		if err != nil {
			return false, err.Error()
		}
		v = m[series]
		return cond(v), fmt.Sprintf("%s %s = %v", p.Name, series, v)
	})
	return v
}

// Eventually polls cond every 10 ms (backing off to 100 ms) until it
// holds, failing the test with cond's last message after timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	var msg string
	for {
		var ok bool
		if ok, msg = cond(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, msg)
		}
		time.Sleep(wait)
		wait = min(wait*3/2, 100*time.Millisecond)
	}
}

// Run runs `hearth args...` to completion (at most timeout) in dir and
// returns its stdout and stderr, and its error.
func Run(t testing.TB, dir string, timeout time.Duration, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	if ctx.Err() != nil {
		err = errors.Join(err, fmt.Errorf("hearth %s: timed out after %s", strings.Join(args, " "), timeout))
	}
	return stdout.String(), stderr.String(), err
}

// PID is the process id of the running process (0 when none).
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// MemStatus returns the process's resident set size and its peak (VmRSS
// and VmHWM from /proc/PID/status), in bytes.
func (p *Proc) MemStatus() (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v << 10
		case "VmHWM:":
			peak = v << 10
		}
	}
	return rss, peak, nil
}
