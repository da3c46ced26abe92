# ofctl-agent build, test and demo entry points.
GO        ?= go
PKGS      ?= ./...
TESTFLAGS ?= -count=1 -timeout 20m
BIN       := bin/ofctl-agent

.PHONY: all build test unit setup vet lint bench demo demo-docker demo-down clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/ofctl-agent
	$(GO) build -o bin/ofctl-cni ./cmd/ofctl-cni

setup:
	@scripts/setup-host.sh

## vet: go vet, and go.mod as `go mod tidy` leaves it (direct requirements not marked indirect).
vet:
	$(GO) vet $(PKGS)
	$(GO) mod tidy -diff

## test: vet, unit tests, fuzz seed corpora and integration tests against real OVS,
## then the packages again under the race detector.
test: setup vet
	$(GO) test $(TESTFLAGS) $(PKGS)
	$(GO) test -race $(TESTFLAGS) ./pkg/... ./cmd/...

## unit: tests that need no root and no OVS (integration tests skip outside CI).
unit:
	OFCTL_NO_OVS=1 $(GO) test -count=1 $(PKGS)

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi

bench: setup
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 120m ./bench/...

demo: setup build
	scripts/demo.sh

demo-docker: setup build
	scripts/demo.sh docker

demo-down:
	scripts/demo.sh down

clean:
	rm -rf bin
