# Thin wrapper over CMake; see README.md.
BUILD ?= build
JOBS ?= $(shell nproc)
CTEST_ARGS ?=

.PHONY: deps build test up bench clean format

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# make up: only the tintype binary (not the ASan twin nor the tests), quietly:
# the build's output is shown only when it fails. Then `tintype up`, which
# ends its start-up with the URL to open. It listens on 127.0.0.1 (this
# machine only: sign-up needs no key); TINTYPE_HOST=0.0.0.0 make up opens it
# to the network, TINTYPE_PORT=8090 make up moves it (README, "make up").
TINTYPE_HOST ?= 127.0.0.1
export TINTYPE_HOST

up: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@echo "make up: building $(BUILD)/tintype ..."
	@cmake --build $(BUILD) -j $(JOBS) --target tintype >$(BUILD)/make-up.log 2>&1 || \
	  { cat $(BUILD)/make-up.log; echo "make up: the build failed (log above, also in $(BUILD)/make-up.log)"; exit 1; }
	@exec $(BUILD)/tintype up

bench: build
	bash loadtest/bench.sh
	python3 loadtest/bench_aws.py

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
