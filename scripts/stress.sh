#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make stress: the stress program alone on the debug kernel for as long as
# asked (STRESS_SECONDS, default 600) in STRESS_ROUNDS rounds (default in
# lib.sh: 3) with test_hmm unloaded and loaded again between them, then
# module unload and a kmemleak scan; judged like make test, also when the
# guest timed out (exit status non-zero then). STRESS_ARGS adds arguments
# (joined with '+'), e.g. STRESS_ARGS=-p+100 HMM_SMALL=1 for the memory-
# pressure run of make test. FLAVOUR=race runs it on the KCSAN kernel,
# where a data race in our code fails it (results.py).
. "$(dirname "$0")/lib.sh"

here=$(dirname "$0")
secs=${STRESS_SECONDS:-600}
flavour=${FLAVOUR:-debug}
"$here/kernel.sh" ours "$flavour"
take_lock
res=$RESULTS/stress-$(date +%Y%m%d-%H%M%S)
mkdir -p "$res"
# On the race flavour (KCSAN), the functions whose races fail the run.
[[ $flavour == race ]] &&
	"$here/race-scope.py" "$(build_dir ours race)" "$BASE" "$TREE" "$TOP/patches" >"$res/scope.txt"
boot_rc=0
HMM_ARGS="-t+$((secs / STRESS_ROUNDS))${STRESS_ARGS:++$STRESS_ARGS}" HMM_TIMEOUT=$((secs * 2 + 600)) \
	STAGE_CONTINUE=1 stage stress "$here/boot.sh" "$(build_dir ours "$flavour")" stress "$res" ||
	boot_rc=$?
"$here/results.py" "$res" >"$res/summary.txt" || true
grep -h '^#' "$res/tests.log" 2>/dev/null | tail -n 20 || true
cat "$res/summary.txt"
((boot_rc == 0)) && grep -q ' 0 failed, 0 skipped$' "$res/summary.txt"
