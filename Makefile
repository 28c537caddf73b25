# ecklink — see README.md. `make help` lists the targets.
SHELL := /usr/bin/env bash
export PATH := /usr/local/go/bin:$(CURDIR)/.cache/tools/bin:$(PATH)

GO        ?= go
# The faults package is the longest (about half of make test): listed first, go test starts it
# first, and the other packages fill the second slot beside it instead of queueing it last.
PKGS      := ./test/e2e/faults ./...
# E2E scenarios start real kube-apiservers, etcd and ECK; they share environments per package.
TEST_TIMEOUT ?= 80m
FUZZTIME  ?= 10s
# make test runs each fuzz target this long after the tests (6 targets: about a minute, builds
# cached); make fuzz runs them for FUZZTIME.
FUZZTIME_TEST ?= 5s

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: testbed
testbed: ## Build the test bed's kube-apiserver, etcd and ECK operator (cached in .cache/testbed).
	test/tools/build.sh testbed

.PHONY: tools
tools: ## Install developer tools (helm, buf, protoc plugins, staticcheck) into .cache/tools.
	test/tools/build.sh tools

.PHONY: build
build: ## Build the agent and agentctl into bin/.
	$(GO) build -trimpath -o bin/ ./agent/cmd/...

# The image version defaults to the chart's appVersion, so the chart's default image
# (ghcr.io/ecklink/agent:<appVersion>) is what `make image` builds.
VERSION ?= $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*$$/\1/p' deploy/helm/ecklink/Chart.yaml)
# Reproducible outputs: timestamps are the last commit's.
EPOCH = $${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || echo 0)}

.PHONY: image
image: ## Build the agent image for linux/amd64 and linux/arm64 without a container engine: OCI layout (index + SPDX SBOM) dist/ecklink-agent-VERSION-oci, the SBOM file, and a docker load tarball for this machine.
	@SOURCE_DATE_EPOCH=$(EPOCH) $(GO) run ./deploy/image/cmd/build-image --version $(VERSION) \
		--revision "$$(git rev-parse HEAD 2>/dev/null)"

.PHONY: push
push: ## Push the image of make image (built first if missing) to REGISTRY/agent:VERSION, without a container engine; prints the digest.
	@test -n "$(REGISTRY)" || { echo "make push: set REGISTRY, e.g. make push REGISTRY=registry.example.com/ecklink (the image goes to REGISTRY/agent:$(VERSION))" >&2; exit 2; }
	@test -d dist/ecklink-agent-$(VERSION)-oci || $(MAKE) --no-print-directory image
	$(GO) run ./deploy/image/cmd/push-image --registry $(REGISTRY) --layout dist/ecklink-agent-$(VERSION)-oci

.PHONY: dist
dist: ## Build agentctl release archives (linux, darwin; amd64, arm64) with SHA256SUMS and the krew manifest into dist/agentctl-VERSION.
	@SOURCE_DATE_EPOCH=$(EPOCH) $(GO) run ./deploy/dist/cmd/dist --version $(VERSION)

.PHONY: chart-golden
chart-golden: tools ## Refresh the chart's golden files (deploy/helm/ecklink_test/testdata) after a chart change.
	$(GO) test ./deploy/helm/ecklink_test -run TestTemplateGolden -update

.PHONY: test
test: testbed tools ## Run every test: unit, fuzz seeds, e2e on the test bed, then each fuzz target briefly.
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)
	test/tools/fuzz.sh $(FUZZTIME_TEST)

.PHONY: test-unit
test-unit: ## Run only the fast tests (no test-bed processes).
	$(GO) test -short -count=1 $(PKGS)

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME.
	test/tools/fuzz.sh $(FUZZTIME)

.PHONY: generate
generate: tools ## Regenerate protobuf code, deepcopy and the CRDs (test/tools/generate.sh).
	test/tools/generate.sh

.PHONY: demo
demo: testbed tools ## Run the whole product locally on the test bed, narrated (DEMO_ARGS=-non-interactive to run unattended).
	$(GO) run ./test/demo $(DEMO_ARGS)

.PHONY: bench
bench: testbed ## Benchmark CA propagation at 1/50/1,000 links against a bare client-go baseline, scale and idle cost, 100 fake peers on one agent; appends to test/bench/RESULTS.md, fails on a regression.
	$(GO) run ./test/bench -updates 60 -links 1,50,1000 -idle 60s -peers 100

.PHONY: verify
verify: tools ## Fail on stale generated code, untidy go.mod, formatting, vet and lint.
	test/tools/verify.sh

.PHONY: fix
fix: tools ## Rewrite what verify checks: generate, tidy, format.
	test/tools/generate.sh
	$(GO) mod tidy
	gofmt -w $$(git ls-files '*.go' | grep -v '\.pb\.go$$')

.PHONY: duplicates
duplicates: ## List the code agent/ repeats, with the developers' duplicates command (REV=<commit> for an older tree).
	test/tools/duplicates.sh $(REV)

.PHONY: clean
clean: ## Remove build outputs (keeps the test-bed cache).
	rm -rf bin dist
