# ringtap — run `make help` for the targets.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Each test binary gets this long; CI's whole run must stay far below 90 min.
TEST_TIMEOUT ?= 15m
BENCHFLAGS ?=

.PHONY: help deps build generate check-generate test test-race test-kernels demo lint bench clean

help: ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install the Debian packages needed (clang, libpcap-dev, tcpdump, tshark, ...)
	@[ -n "$(SKIP_DEPS)" ] || { hack/deps.sh && hack/minio.sh; }

build: deps ## build bin/ringtap, bin/ringtap-console and bin/ringtap-bench
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ringtap ./cmd/ringtap
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ringtap-bench ./cmd/ringtap-bench
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ringtap-console ./cmd/ringtap-console

generate: deps ## regenerate gen/ from bpf/ with bpf2go (pinned clang flags in gen/doc.go)
	$(GO) generate ./gen

check-generate: generate ## fail if regenerating gen/ changes anything
	@git diff --exit-code --stat -- gen/ || { echo "gen/ is stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- gen/)" || { git status --porcelain -- gen/; echo "gen/ has untracked output"; exit 1; }

test: deps ## run every test (privileged tests need root; under CI=true they fail instead of skipping); screenshots and other test output go to bin/test-output
	$(GO) vet ./...
	rm -rf bin/test-output && mkdir -p bin/test-output
	$(GO) test -p 1 -count=1 -timeout $(TEST_TIMEOUT) -artifacts -outputdir $(CURDIR)/bin/test-output ./...
	@# Every Go benchmark once (-benchtime 1x), so that none rots; make bench and BENCHMARKS.md give the real runs.
	$(GO) test -p 1 -count=1 -timeout $(TEST_TIMEOUT) -run '^$$' -bench . -benchtime 1x ./...

test-kernels: deps ## run the privileged tests and the demo on Debian's 5.10, 6.1, 6.12 kernels (qemu) and the host's (hack/kernels)
	hack/kernels/matrix.sh

test-race: deps ## run the tests with the race detector
	$(GO) test -p 1 -race -count=1 -timeout $(TEST_TIMEOUT) ./...

demo: build ## capture on a veth pair of its own with generated traffic, then check the file with capinfos
	./bin/ringtap capture -w captures/demo.pcapng
	capinfos -c -M captures/demo.pcapng
	tshark -r captures/demo.pcapng -q -z io,phs | head -40

lint: deps ## gofmt, go vet (linux and darwin), staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'); echo "run gofmt"; exit 1; }
	$(GO) vet ./...
	GOOS=darwin CGO_ENABLED=0 $(GO) vet ./pkg/pcapio/... ./pkg/signals/... ./pkg/caps/...
	$(GO) run $(STATICCHECK) ./...

bench: build ## capture benchmark against tcpdump on a veth pair (see BENCHMARKS.md)
	./bin/ringtap-bench -ringtap bin/ringtap -json bin/bench.json $(BENCHFLAGS)

clean: ## remove build output
	rm -rf bin captures
