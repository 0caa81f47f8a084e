package testbrowser

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/js/jsbuild"
)

// Environment passed to the re-executed test binary.
const (
	envInNetns = "HEARTH_TESTBROWSER_NETNS" // set inside the namespace
	envAssets  = "HEARTH_TESTBROWSER_ASSETS"
	envLAN     = "HEARTH_TESTBROWSER_LAN" // set when the namespace has its veth pair
)

// nsSetup brings the namespace's interfaces up: lo, and a veth pair with
// private addresses (10.77.0.1, 10.77.0.2) so that Chromium, which gathers
// no ICE candidate on loopback alone, has an interface to gather host
// candidates on. Chromium offers candidates only on the interface of the
// default route (it asks the kernel for the route to a public address),
// hence the default route through the pair. Both ends stay inside the
// namespace and forwarding is off: nothing leaves it.
// Without veth support the browser-to-browser tests skip.
const nsSetup = `ip link set lo up || exit 1
if ip link add hearth0 type veth peer name hearth1 2>/dev/null &&
   ip addr add 10.77.0.1/24 dev hearth0 && ip addr add 10.77.0.2/24 dev hearth1 &&
   ip link set hearth0 up && ip link set hearth1 up &&
   ip route add default via 10.77.0.2 dev hearth0; then
  export ` + envLAN + `=1
fi
exec "$0" "$@"`

// skipReason, when set, makes every browser test skip.
var skipReason string

// assetsDir holds the built wasm assets.
var assetsDir string

// chromiumPath is the browser to drive.
const chromiumPath = "/usr/bin/chromium"

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	flag.Parse()
	if os.Getenv(envInNetns) != "" {
		assetsDir = os.Getenv(envAssets)
		// Tests that run the hearth binary (package harness) get one that
		// embeds these assets.
		harness.UseAssets(assetsDir)
		defer harness.RemoveBinary()
		return m.Run()
	}
	if reason := prerequisites(); reason != "" {
		skipReason = reason
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "hearth-testbrowser-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbrowser:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Build everything before entering the namespace: it has no route to
	// the module proxy.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := jsbuild.Build(ctx, jsbuild.Options{Out: dir, SkipBrotli: true, KeepNames: os.Getenv("HEARTH_WASM_NAMES") != ""}); err != nil {
		fmt.Fprintln(os.Stderr, "testbrowser: building wasm:", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbrowser:", err)
		return 1
	}
	args := append([]string{"--net", "--", "/bin/sh", "-c", nsSetup, self}, os.Args[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), envInNetns+"=1", envAssets+"="+dir)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = os.Stdout, os.Stderr, os.Stdin
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "testbrowser: running in a network namespace:", err)
		return 1
	}
	return 0
}

// prerequisites returns why the browser tests cannot run here, or "".
func prerequisites() string {
	if testing.Short() {
		return "browser tests skipped in -short mode"
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		return "no " + chromiumPath + " (apt-get install chromium)"
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "no " + tool + " command"
		}
	}
	if out, err := exec.Command("unshare", "--net", "--", "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Sprintf("cannot create a network namespace (unshare --net: %v: %s); the browser tests need one", err, out)
	}
	return ""
}

// needBrowser skips t when the browser tests cannot run.
func needBrowser(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if assetsDir == "" {
		t.Skip("no built assets")
	}
	if _, err := os.Stat(filepath.Join(assetsDir, "sw.wasm")); err != nil {
		t.Fatalf("assets: %v", err)
	}
}
