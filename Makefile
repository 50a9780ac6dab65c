# Thin wrapper over CMake; see README.md.
BUILD ?= build
JOBS ?= $(shell nproc)
CTEST_ARGS ?=

.PHONY: deps build test up bench clean format deb cluster

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

up: build
	$(BUILD)/tintype up

bench: build
	bash loadtest/bench.sh

# $(BUILD)/deb/tintype_VERSION_amd64.deb (infra/packaging/)
deb: build
	@bash infra/packaging/build-deb.sh $(BUILD)/tintype $(BUILD)/deb

# HAProxy as the ALB in front of 2 API + 2 worker instances (infra/local/)
cluster: build
	bash infra/local/cluster.sh $(BUILD)/tintype

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
