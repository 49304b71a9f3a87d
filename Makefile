# SPDX-License-Identifier: GPL-2.0
# HMM for Linux 6.12: the patch series, and the tooling that builds, boots
# and tests it. `make help` lists the targets.

FLAVOUR ?=
export FLAVOUR

.PHONY: help run test test-stock kernel tree base deps clean distclean

help:
	@echo "make run        build the series (default flavour), boot it in QEMU, run the demo"
	@echo "make test       build the debug flavour, boot it, run KUnit + all test programs, then the memory-pressure boot and the KCSAN (race) boot"
	@echo "make test-stock the same tests on the unmodified 6.12 base (what the series fixes fails there)"
	@echo "make bench      stock 6.12 vs the series, same QEMU machine, table + CSV + PNG (BENCH_QUICK=1 for a short run)"
	@echo "make series     git format-patch series + cover letter in out/series, proven to apply, build and match"
	@echo "make stress     the stress program alone for STRESS_SECONDS (default 600) on the debug kernel, in STRESS_ROUNDS with driver reloads"
	@echo "make check      checkpatch, kernel-doc, W=1 + sparse, in-tree users compile + link check, KUnit via kunit.py"
	@echo "make kernel     only build (FLAVOUR=default|debug|race, default: debug)"
	@echo "make tree       only assemble .cache/tree = base + linux/ + patches/"
	@echo "make base       extract Debian's linux-source-6.12 into .cache and print its version"
	@echo "make deps       install the Debian packages the targets need (as root)"
	@echo "make clean      delete build outputs (keeps the base and ccache)"
	@echo "make distclean  delete .cache and results"

run:
	@scripts/run.sh

test:
	@scripts/test.sh

test-stock:
	@HMM_KIND=stock scripts/test.sh

kernel:
	@scripts/kernel.sh ours $(or $(FLAVOUR),debug)

tree: base
	@scripts/tree.sh

base: deps
	@scripts/base.sh

deps:
	@scripts/deps.sh

clean:
	rm -rf .cache/build .cache/tree .cache/logs

distclean:
	rm -rf .cache results

.PHONY: check bench series stress
stress:
	@scripts/stress.sh

series:
	@scripts/series.sh

bench:
	@scripts/bench.sh

check:
	@scripts/check.sh
