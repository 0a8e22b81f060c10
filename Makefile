# qpipe — developer targets. `make test` is what CI and the README run.

GO ?= go
FLATC ?= flatc
SCHEMA := internal/tflite/fb/schema.fbs

.PHONY: all build test generate

all: build

build:
	$(GO) build -o bin/qpipe ./cmd/qpipe

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
