# Hearth. `make demo` runs the main job on the embedded default site;
# `make test` runs the tests. See README.md.
GO ?= go
BIN := bin/hearth

.PHONY: all build test bench demo vet clean wasm test-wasm test-browser

all: build

build:
	$(GO) build -o $(BIN) ./cmd/hearth

vet:
	$(GO) vet ./...

test: vet
	$(GO) test -count=1 -timeout 20m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 30m ./node/...

demo: build
	./$(BIN) demo $(if $(SITE),--site $(SITE))

clean:
	rm -rf bin

# The browser client's wasm (service worker, page agent) and wasm_exec.js,
# with .gz/.br copies, into js/dist where the hearth binary embeds them;
# prints raw/gzip/brotli sizes against the budgets.
wasm:
	$(GO) run ./js/jsbuild/mkwasm -out js/dist

# Wasm unit tests, under Node.
test-wasm:
	GOOS=js GOARCH=wasm $(GO) test -count=1 -timeout 10m -exec="$$($(GO) env GOROOT)/lib/wasm/go_js_wasm_exec" ./wasm/... ./js/jsconfig/ ./node/

# Browser end-to-end tests (headless Chromium in a network namespace; they
# build their own wasm first and skip when Chromium or unshare is missing).
test-browser:
	$(GO) test -count=1 -timeout 15m ./testbrowser/
