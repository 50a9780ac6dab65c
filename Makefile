# Thin wrapper over CMake; see README.md.
BUILD ?= build
JOBS ?= $(shell nproc)
CTEST_ARGS ?=

.PHONY: deps build test up bench drills clean format deb cluster fuzz

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# libFuzzer targets of tests/fuzz, built with clang in $(FUZZ_BUILD), each run
# for FUZZ_SECONDS (FUZZ_TARGETS="http cdp" picks some); new inputs are kept in
# $(FUZZ_BUILD)/work/<target>/corpus, crashes in .../artifacts.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
fuzz: deps
	@FUZZ_JOBS=$(JOBS) sh tests/fuzz/build.sh $(CURDIR) $(FUZZ_BUILD) $$(command -v clang)
	@fail=""; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  sh tests/fuzz/run.sh $(FUZZ_BUILD)/fuzz_$$t tests/fuzz/corpus/$$t $(FUZZ_BUILD)/work/$$t $(FUZZ_SECONDS) \
	    >$(FUZZ_BUILD)/work-$$t.log 2>&1 || fail="$$fail $$t"; \
	  grep -E 'stat::number_of_executed_units|stat::new_units_added|SUMMARY' $(FUZZ_BUILD)/work-$$t.log || true; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz: problems found in:$$fail (logs: $(FUZZ_BUILD)/work-<target>.log)"; exit 1; fi; \
	echo "fuzz: nothing found"

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

# $(BUILD)/deb/tintype_VERSION_amd64.deb (infra/packaging/)
deb: build
	@bash infra/packaging/build-deb.sh $(BUILD)/tintype $(BUILD)/deb

# HAProxy as the ALB in front of 2 API + 2 worker instances (infra/local/)
cluster: build
	bash infra/local/cluster.sh $(BUILD)/tintype

# Fault drills on one machine (issue 16 item 15): loadtest/drills/single.py prints a table.
drills: build
	BUILD=$(BUILD) python3 loadtest/drills/single.py

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD)
