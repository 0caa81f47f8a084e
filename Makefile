# Hearth. `make demo` runs the main job on the embedded default site;
# `make test` runs the tests. See README.md.
GO ?= go
BIN := bin/hearth

.PHONY: all build test bench demo vet clean

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
