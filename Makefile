# qpipe — developer targets. `make test` is what CI and the README run.

GO ?= go
FLATC ?= flatc
SCHEMA := internal/tflite/fb/schema.fbs

.PHONY: all build test generate image

all: build

# VERSION is what `qpipe version` prints and lock files record
# (README: Lock files); a release sets it: make build VERSION=v1.2.3.
VERSION ?= dev

# A static binary: qpipe needs no C library (CGO off; zerolog's net import
# would otherwise pull in the C resolver).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/qpipe ./cmd/qpipe

# The container image (Containerfile: FROM scratch, the static binary, a
# non-root user) with podman, or docker when podman is absent.
CONTAINER ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
IMAGE ?= qpipe:$(VERSION)
image: build
	@test -n "$(CONTAINER)" || { echo "make image: needs podman or docker (apt-get install podman)" >&2; exit 1; }
	$(CONTAINER) build -f Containerfile --build-arg VERSION=$(VERSION) -t $(IMAGE) .

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# Regenerate the TFLite schema bindings (needs Debian's flatc 2.0.8:
# apt-get install flatbuffers-compiler). The output is committed, so a normal
# build never needs flatc.
generate:
	rm -rf .gen && mkdir -p .gen
	$(FLATC) --go --gen-object-api -o .gen $(SCHEMA)
	find internal/tflite/fb -name '*.go' ! -name 'budget.go' ! -name 'doc.go' ! -name '*_test.go' -delete
	$(GO) run ./tools/fbfix .gen/tflite internal/tflite/fb
	rm -rf .gen

# Quantize generated ~1 GB and ~4 GB float decoders with each main preset
# and compare with a plain cp of the same file (tools/bench; models cached in
# .cache/bench). Not part of CI.
.PHONY: bench bench-7b bench-measure
bench:
	$(GO) run ./tools/bench -sizes 1gb,4gb -runs 3

# What the measuring commands cost on the same models: eval (8x64 tokens),
# calibrated int4 scales and a budget at uniform int4 block 128's size
# (tools/bench -measure). Not part of CI.
bench-measure:
	$(GO) run ./tools/bench -sizes 1gb,4gb -runs 1 -measure eval,calibrated,budget

# The 7B-parameter case (a 26.8 GB float model, more than this machine's RAM)
# with dynamic_int4_block32 and dynamic_int8. Needs about 64 GB of free disk (the model, the cp baseline and the outputs);
# the tool checks and says so. Not part of CI.
bench-7b:
	$(GO) run ./tools/bench -sizes 7b -runs 1 -schemes dynamic_int4_block32,dynamic_int8
