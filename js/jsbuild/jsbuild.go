// Package jsbuild builds the browser client's wasm assets: what `make wasm`
// writes to js/dist for embedding, and what browser tests build into a
// temporary directory before they start.
package jsbuild

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Budgets, in brotli'd bytes (issue 6).
const (
	BudgetSW    = 1_200_000
	BudgetAgent = 1_600_000
)

// Options say where to build and with what.
type Options struct {
	// Out is the directory to write to (created if missing).
	Out string
	// Go is the go command; "" means "go" from PATH.
	Go string
	// Brotli is the brotli command; "" means "brotli" from PATH, and a
	// missing command means no .br files.
	Brotli string
	// SkipBrotli writes no .br files (tests: gzip is enough on loopback).
	SkipBrotli bool
	// Only limits the build to some targets by name ("sw", "agent").
	Only []string
	// DropRaw removes the uncompressed .wasm files once compressed (the
	// .gz and .br copies are what is served; see hearthjs).
	DropRaw bool
	// KeepNames keeps the wasm name section (no -ldflags=-s), so browser
	// profiles show Go function names; the binaries grow by about 4%.
	KeepNames bool
}

// Artifact is one built file and its sizes in bytes.
type Artifact struct {
	Name              string // file name in Out: "sw.wasm"
	Raw, Gzip, Brotli int64  // Brotli is 0 without the brotli command
	Budget            int64  // brotli budget, 0 if none
}

// targets are the wasm main packages, relative to the module root.
var targets = []struct {
	name, pkg string
	budget    int64
}{
	{"sw", "./wasm/sw", BudgetSW},
	{"agent", "./wasm/agent", BudgetAgent},
}

// Build compiles the service worker and the page agent with GOOS=js
// GOARCH=wasm (-trimpath, -ldflags=-s), copies $(go env GOROOT)/lib/wasm/wasm_exec.js,
// and writes .gz (and .br with the brotli command) copies. It runs the go
// command in the module that contains the working directory. Errors carry
// the compiler's output.
func Build(ctx context.Context, opts Options) ([]Artifact, error) {
	goCmd := opts.Go
	if goCmd == "" {
		goCmd = "go"
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, err
	}
	out, err := filepath.Abs(opts.Out)
	if err != nil {
		return nil, err
	}
	modDir, err := goEnv(ctx, goCmd, "GOMOD")
	if err != nil {
		return nil, err
	}
	if modDir == "" || modDir == os.DevNull {
		return nil, errors.New("not inside a Go module")
	}
	modDir = filepath.Dir(modDir)
	goroot, err := goEnv(ctx, goCmd, "GOROOT")
	if err != nil {
		return nil, err
	}
	brotli := opts.Brotli
	if brotli == "" {
		brotli = "brotli"
	}
	if _, err := exec.LookPath(brotli); err != nil || opts.SkipBrotli {
		brotli = ""
	}
	var arts []Artifact
	for _, t := range targets {
		if len(opts.Only) > 0 && !contains(opts.Only, t.name) {
			continue
		}
		dst := filepath.Join(out, t.name+".wasm")
		args := []string{"build", "-trimpath", "-ldflags=-s", "-o", dst, t.pkg}
		if opts.KeepNames {
			args = []string{"build", "-trimpath", "-o", dst, t.pkg}
		}
		cmd := exec.CommandContext(ctx, goCmd, args...)
		cmd.Dir = modDir
		cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
		if b, err := cmd.CombinedOutput(); err != nil {
			return arts, fmt.Errorf("building %s: %w\n%s", t.pkg, err, b)
		}
		a, err := compress(ctx, dst, brotli)
		if err != nil {
			return arts, err
		}
		a.Budget = t.budget
		arts = append(arts, a)
		if opts.DropRaw {
			if err := os.Remove(dst); err != nil {
				return arts, err
			}
		}
	}
	src, err := os.ReadFile(filepath.Join(goroot, "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return arts, fmt.Errorf("copying wasm_exec.js: %w", err)
	}
	dst := filepath.Join(out, "wasm_exec.js")
	if err := os.WriteFile(dst, src, 0o644); err != nil {
		return arts, err
	}
	a, err := compress(ctx, dst, brotli)
	if err != nil {
		return arts, err
	}
	return append(arts, a), nil
}

// compress writes path.gz and, with brotli, path.br.
func compress(ctx context.Context, path, brotli string) (Artifact, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Artifact{}, err
	}
	a := Artifact{Name: filepath.Base(path), Raw: int64(len(raw))}
	var z bytes.Buffer
	zw, err := gzip.NewWriterLevel(&z, gzip.BestCompression)
	if err != nil {
		return a, err
	}
	if _, err := zw.Write(raw); err != nil {
		return a, err
	}
	if err := zw.Close(); err != nil {
		return a, err
	}
	if err := os.WriteFile(path+".gz", z.Bytes(), 0o644); err != nil {
		return a, err
	}
	a.Gzip = int64(z.Len())
	if brotli != "" {
		cmd := exec.CommandContext(ctx, brotli, "-f", "-q", "11", "-o", path+".br", path)
		if b, err := cmd.CombinedOutput(); err != nil {
			return a, fmt.Errorf("brotli %s: %w\n%s", path, err, b)
		}
		st, err := os.Stat(path + ".br")
		if err != nil {
			return a, err
		}
		a.Brotli = st.Size()
	}
	return a, nil
}

func goEnv(ctx context.Context, goCmd, key string) (string, error) {
	b, err := exec.CommandContext(ctx, goCmd, "env", key).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
