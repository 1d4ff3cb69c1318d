# irqemu — build, test and benchmark.
#
#   make test    install what is missing, build, run the tests (under a timeout)
#   make bench   install what is missing, build release, run irqbench, write bench.json
#   make tsan    the tests under ThreadSanitizer, with the shim's grace-period annotations
#   make demo    a few seconds of irqsim's emulated machine
#   make torture a minute of irqsim torture (RCU strategy)
#   make docs    the DocC documentation (every library module, one archive), with no
#                warnings, and the public API audit (.ci/api-audit.py)
#   make deps    install liburcu (Debian: liburcu-dev) when pkg-config cannot find it

SHELL        := /bin/bash
SWIFT        ?= swift
TEST_TIMEOUT ?= 600
TSAN_TIMEOUT ?= 1200
BENCH_FLAGS  ?=

DOC_TARGETS  = KernelRuntime RCU DeviceModel IRQCore IRQSources IRQEmu

.PHONY: all build deps test test-twice tsan bench bench-quick demo torture docs clean

all: build

deps:
	@if pkg-config --exists liburcu-memb 2>/dev/null; then \
	  echo "deps: liburcu $$(pkg-config --modversion liburcu-memb) found"; \
	else \
	  echo "deps: liburcu (liburcu-memb.pc) not found; installing liburcu-dev"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "deps: need root to install liburcu. Run: sudo apt-get update && sudo apt-get install -y liburcu-dev pkg-config" >&2; exit 1; fi; \
	  command -v apt-get >/dev/null 2>&1 || { echo "deps: no apt-get here; install liburcu (>= 0.13) with your package manager" >&2; exit 1; }; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q liburcu-dev pkg-config && \
	  pkg-config --exists liburcu-memb || { echo "deps: liburcu-dev installed but liburcu-memb.pc still missing" >&2; exit 1; }; \
	fi

build: deps
	$(SWIFT) build

test: deps
	$(SWIFT) build --build-tests
	timeout --kill-after=30 $(TEST_TIMEOUT) $(SWIFT) test --skip-build

# Every test twice in one process (state a test leaves behind must not fail its second run).
test-twice: deps
	$(SWIFT) build --build-tests
	timeout --kill-after=30 $$(( $(TEST_TIMEOUT) * 2 )) $$($(SWIFT) build --show-bin-path)/irqemuPackageTests.xctest --testing-library swift-testing --repetitions 2

docs: deps
	IRQEMU_DOCS=1 $(SWIFT) package --disable-sandbox generate-documentation --enable-experimental-combined-documentation \
	  $(addprefix --target ,$(DOC_TARGETS)) 2>&1 | tee .build/docs.log | grep -E "warning|error|Generated" ; \
	  test $${PIPESTATUS[0]} -eq 0
	@if grep -q "warning:" .build/docs.log; then echo "docs: DocC warnings (see .build/docs.log)" >&2; exit 1; fi
	python3 .ci/api-audit.py

tsan: deps
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan -Xcc -DIRQEMU_TSAN_ANNOTATE -Xswiftc -DIRQEMU_TSAN
	timeout --kill-after=30 $(TSAN_TIMEOUT) $(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan -Xcc -DIRQEMU_TSAN_ANNOTATE -Xswiftc -DIRQEMU_TSAN

bench: deps
	$(SWIFT) build -c release --product irqbench
	$$($(SWIFT) build -c release --show-bin-path)/irqbench --json bench.json $(BENCH_FLAGS)

bench-quick: deps
	$(SWIFT) build -c release --product irqbench
	$$($(SWIFT) build -c release --show-bin-path)/irqbench --quick --json bench.json

demo: deps
	$(SWIFT) build -c release
	$$($(SWIFT) build -c release --show-bin-path)/irqsim run --seconds 4 --typist

torture: deps
	$(SWIFT) build -c release
	$$($(SWIFT) build -c release --show-bin-path)/irqsim torture --seconds 60 --readers 2 --strategy rcu

clean:
	rm -rf .build .build-tsan bench.json
