# Hearth. `make demo` runs the main job on the embedded default site;
# `make test` runs the tests. See README.md.
GO ?= go
BIN := bin/hearth

.PHONY: all build test bench bench-relay bench-browser demo e2e vet clean wasm test-wasm test-browser netlab

all: build

# The binary embeds the browser client built by `make wasm`.
build: wasm
	$(GO) build -o $(BIN) ./cmd/hearth

vet:
	$(GO) vet ./...

# The packages whose goroutines share state run under the race detector;
# each package runs once, so CI pays the detector's cost only for them.
RACE_PKGS := ./node/... ./relay/... ./wasm/internal/...

# Everything: native tests (including the multi-process, FUSE and headless
# Chromium suites), then the wasm tests under Node.
test: vet wasm
	$(GO) test -race -count=1 -timeout 25m $(RACE_PKGS)
	$(GO) test -count=1 -timeout 25m $$($(GO) list ./... | grep -vxF "$$($(GO) list $(RACE_PKGS))")
	$(MAKE) test-wasm

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./node/... ./fuse/ ./internal/harness/

demo: build
	./$(BIN) demo $(if $(SITE),--site $(SITE))

clean:
	rm -rf bin
	find js/dist -type f ! -name README.md ! -name .gitignore -delete

# The browser client's wasm (service worker, page agent) and wasm_exec.js,
# with .gz/.br copies, into js/dist where the hearth binary embeds them;
# prints raw/gzip/brotli sizes against the budgets.
wasm:
	$(GO) run ./js/jsbuild/mkwasm -out js/dist

# Wasm unit tests, under Node.
test-wasm:
	GOOS=js GOARCH=wasm $(GO) test -count=1 -timeout 10m -exec="$$($(GO) env GOROOT)/lib/wasm/go_js_wasm_exec" ./wasm/... ./js/jsconfig/ ./node/ ./node/exchange/ ./relay/client/ ./internal/logx/

# The network lab: namespaces, NATs, delayed and shaped links, and the
# tests that run peers through them (needs root, veth and /dev/net/tun; as
# part of `make test` these skip, saying why, where the machine lacks them).
netlab:
	$(GO) test -count=1 -v -timeout 10m ./internal/netlab/

# Browser end-to-end tests (headless Chromium in a network namespace; they
# build their own wasm first and skip when Chromium or unshare is missing).
test-browser:
	$(GO) test -count=1 -timeout 25m ./testbrowser/

# The swarm acceptance suite in headless Chromium (also part of `make test`).
e2e: test-browser

# Seeder → page through the service worker, next to WebTorrent's figures.
bench-browser:
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 60m ./testbrowser/

# 10,000 WebSocket peers against a relay on loopback (see relay/README.md).
bench-relay:
	$(GO) run ./relay/loadgen -peers 10000 -rate 20000 -duration 20s
