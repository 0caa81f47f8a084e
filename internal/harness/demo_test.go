//go:build linux

package harness

import (
	"bufio"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `hearth demo` starts an origin, a relay and two seeders, prints the URL
// to open, serves the demo site from the origin and the seeders, keeps the
// relay and seeders up when the origin dies (and says so), and stops
// everything on Ctrl-C.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(Binary(t), "demo", "--listen", "127.0.0.1:0", "--dir", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	var originURL, dashURL string
	originPID := 0
	seeders := map[string]string{}
	deadline := time.After(90 * time.Second)
	for originURL == "" || originPID == 0 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo exited before printing its URL: %v", <-done)
			}
			f := strings.Fields(l)
			if len(f) >= 2 && f[0] == "open" {
				originURL = strings.TrimSuffix(f[1], "/")
			}
			if len(f) >= 2 && f[0] == "dashboard" {
				dashURL = f[1]
			}
			if len(f) >= 5 && f[0] == "stop" && strings.HasPrefix(f[3], "(kill") {
				originPID, _ = strconv.Atoi(strings.TrimSuffix(f[4], ")"))
			}
			if len(f) == 2 && strings.HasPrefix(f[0], "seeder") {
				seeders[f[0]] = f[1]
			}
		case <-deadline:
			t.Fatal("demo did not print its URL in 90 s")
		}
	}
	if len(seeders) != 2 {
		t.Fatalf("seeders %v", seeders)
	}
	if dashURL == "" {
		t.Fatal("demo printed no dashboard URL")
	}
	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, home := get(originURL + "/")
	if code != 200 || !strings.Contains(home, "/.hearth/hearth.js") {
		t.Fatalf("origin home: %d", code)
	}
	if c, page := get(dashURL); c != 200 || !strings.Contains(page, "dash.js") {
		t.Fatalf("dashboard %s: %d", dashURL, c)
	}
	for name, u := range seeders {
		if c, page := get(u + "/"); c != 200 || page != home {
			t.Fatalf("%s serves %d, a different page", name, c)
		}
	}
	if c, _ := get(originURL + "/.hearth/hearth.js"); c != 200 {
		t.Fatalf("browser client: %d (the binary embeds js/dist: run make wasm first)", c)
	}
	// The origin dies: the demo says so and the seeders serve on.
	if err := syscall.Kill(originPID, syscall.SIGKILL); err != nil {
		t.Fatalf("killing the origin (%d): %v", originPID, err)
	}
	said := false
	for !said {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo exited when its origin died: %v", <-done)
			}
			said = strings.HasPrefix(l, "the origin exited")
		case <-time.After(30 * time.Second):
			t.Fatal("demo did not say the origin exited in 30 s")
		}
	}
	for name, u := range seeders {
		if c, page := get(u + "/"); c != 200 || page != home {
			t.Fatalf("%s with the origin down serves %d, a different page", name, c)
		}
	}
	// Ctrl-C stops everything cleanly.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop in 30 s")
	}
	for name, u := range seeders {
		if resp, err := http.Get(u + "/healthz"); err == nil {
			resp.Body.Close()
			t.Fatalf("%s still answers after the demo stopped", name)
		}
	}
}
