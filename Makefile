# The two set-up commands of the README, and the longer campaigns that stay out of the default suite.
.PHONY: run test deps build build-asan test-asan fuzz bench format format-check tidy clean

JOBS ?= $(shell nproc)

deps:
	bash scripts/deps

build: deps
	cmake --preset default >/dev/null
	cmake --build --preset default -j $(JOBS)

build-asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)

# Installs what is missing, builds, and runs the whole system on this machine.
run: build
	./build/default/cmd/anteroom/anteroom up $(ARGS)

# The default suite: the release build, then the same suite under ASan+UBSan, then format.
test: deps
	bash scripts/test

test-asan: build-asan
	bash scripts/test --only asan

# Long fuzz campaigns (FUZZ_SECONDS per target; FUZZ_TARGETS: only these, e.g. signal_bus), not
# part of `make test`.
fuzz: deps
	bash scripts/fuzz $(or $(FUZZ_SECONDS),60) $(FUZZ_TARGETS)

bench: build
	bash bench/run

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

format-check:
	git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

tidy: build
	bash scripts/tidy

clean:
	rm -rf build
