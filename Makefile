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
	$(GO) test -race -count=1 -timeout 20m ./...

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

# The trained test language model (docs/TRAINED.md): corpus from the Go
# distribution (tools/train corpus), a SentencePiece tokenizer by Debian's
# spm_train (apt-get install sentencepiece), training (tools/train fit,
# deterministic: the same weights for any GOMAXPROCS), then the committed
# files in testdata/models and the evaluation in the training log. About
# half an hour on 2 vCPUs. Not part of CI.
TRAIN_DIR := .cache/train
TRAINED := testdata/models/trained_decoder
SPM_FLAGS := --vocab_size=4096 --model_type=unigram --character_coverage=1.0 --byte_fallback=true \
	--normalization_rule_name=identity --remove_extra_whitespaces=false --add_dummy_prefix=false \
	--split_digits=true --user_defined_symbols="$$(printf '\t,\t\t,\t\t\t,\t\t\t\t')" \
	--input_sentence_size=0 --shuffle_input_sentence=false --seed_sentencepiece_size=1000000 \
	--num_threads=1 --max_sentence_length=8192 --minloglevel=2
.PHONY: trained-model
trained-model:
	$(GO) run ./tools/train corpus -out $(TRAIN_DIR)
	cd $(TRAIN_DIR) && spm_train --input=train.txt --model_prefix=spm $(SPM_FLAGS)
	spm_encode --model=$(TRAIN_DIR)/spm.model --output_format=id --extra_options=eos < $(TRAIN_DIR)/train.txt > $(TRAIN_DIR)/train.ids
	spm_encode --model=$(TRAIN_DIR)/spm.model --output_format=id --extra_options=eos < $(TRAIN_DIR)/heldout.txt > $(TRAIN_DIR)/heldout.ids
	$(GO) run ./tools/train fit -train $(TRAIN_DIR)/train.ids -heldout $(TRAIN_DIR)/heldout.ids -out $(TRAINED).tflite -log $(TRAINED).json
	$(GO) run ./tools/train tokenizer -in $(TRAIN_DIR)/spm.model -out $(TRAINED).spm.model
	cp $(TRAIN_DIR)/heldout.txt $(TRAINED)_heldout.txt
	$(GO) run ./tools/train pack -in $(TRAIN_DIR)/heldout.ids -out $(TRAINED)_heldout.ids
	$(GO) run ./tools/train eval -train $(TRAIN_DIR)/train.ids -spm $(TRAIN_DIR)/spm.model
	$(GO) run ./tools/train bundle -out $(TRAIN_DIR)/trained_decoder.litertlm
