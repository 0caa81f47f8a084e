//go:build linux

package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	assetsDir string // see UseAssets

	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// Binary returns the path of the hearth binary, building it on first use
// (once per test binary) into a temporary directory that Main removes.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "hearth-harness-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "hearth")
		args := []string{"build", "-o", buildBin}
		if assetsDir != "" {
			overlay, err := assetsOverlay(buildDir)
			if err != nil {
				buildErr = err
				return
			}
			args = append(args, "-overlay", overlay)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", append(args, "github.com/hearthcdn/hearth/cmd/hearth")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building hearth: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// Main runs the tests and then removes the binary Binary built. Call it
// from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	RemoveBinary()
	os.Exit(code)
}

// RemoveBinary removes what Binary built; a test binary whose TestMain
// does not call Main calls it once its tests have run.
func RemoveBinary() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// UseAssets makes Binary embed the browser client built in dir (by
// js/jsbuild) in place of js/dist, through the go command's -overlay.
// Call it before the first Binary.
func UseAssets(dir string) { assetsDir = dir }

// assetsOverlay writes, in tmp, an overlay file that puts every file of
// assetsDir at js/dist, and returns its path.
func assetsOverlay(tmp string) (string, error) {
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", "github.com/hearthcdn/hearth/js").Output()
	if err != nil {
		return "", fmt.Errorf("finding package js: %w", err)
	}
	dist := filepath.Join(strings.TrimSpace(string(out)), "dist")
	entries, err := os.ReadDir(assetsDir)
	if err != nil {
		return "", err
	}
	replace := map[string]string{}
	for _, e := range entries {
		if e.Type().IsRegular() {
			replace[filepath.Join(dist, e.Name())] = filepath.Join(assetsDir, e.Name())
		}
	}
	b, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		return "", err
	}
	path := filepath.Join(tmp, "overlay.json")
	return path, os.WriteFile(path, b, 0o644)
}
