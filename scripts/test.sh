#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make test: build the series (debug flavour unless FLAVOUR says otherwise),
# boot it, run every KUnit case and test program, boot it again as a small
# machine under memory pressure for the stress run, judge the logs.
# make test-stock: the same tests on the unmodified base (HMM_KIND=stock);
# what the series fixes fails there, and config/stock-xfail.list names it:
# those failures are expected (XFAIL), anything else fails the run.
# Then make check (HMM_CHECK=0 leaves it out); each check counts as a test.
# A boot that fails (QEMU timed out, HMM_TIMEOUT) does not stop it: the logs
# are judged all the same, and the exit status is non-zero.
# hmm-stress runs in STRESS_ROUNDS rounds (lib.sh), the pressure boot in 2.
# Then the race flavour (KCSAN, config/race.config) is built and boots to
# run hmm-tests and two 60 s hmm-stress rounds; a data race in our code
# fails the run (results.py). HMM_RACE=0 leaves that boot out.
. "$(dirname "$0")/lib.sh"

flavour=${FLAVOUR:-debug}
kind=${HMM_KIND:-ours}
here=$(dirname "$0")
t0=$(now)
# On stock, a case that hangs on 6.12 runs into its program's per-case
# timeout (6.12's own migrate_multiple did once): give that boot more time.
[[ $kind == ours ]] || export HMM_TIMEOUT=${HMM_TIMEOUT:-3600}
"$here/kernel.sh" "$kind" "$flavour"
take_lock
res=$RESULTS/$(date +%Y%m%d-%H%M%S)-$kind-$flavour
if [[ $flavour == race ]]; then
	# FLAVOUR=race: the first boot is a KCSAN one too (results.py)
	mkdir -p "$res"
	"$here/race-scope.py" "$(build_dir "$kind" race)" "$BASE" "$TREE" "$TOP/patches" >"$res/scope.txt"
fi
boot_rc=0
STAGE_CONTINUE=1 stage boot-and-test "$here/boot.sh" "$(build_dir "$kind" "$flavour")" test "$res" ||
	boot_rc=$?
# The memory-pressure run: hmm-stress with a memory hog in a small guest,
# in two rounds with a module reload between them (judged as pressure/...).
HMM_SMALL=1 HMM_ARGS="-t+${HMM_PRESSURE_SECS:-20}+-p+125" STRESS_ROUNDS=2 \
	STAGE_CONTINUE=1 stage boot-pressure "$here/boot.sh" "$(build_dir "$kind" "$flavour")" stress "$res/pressure" ||
	boot_rc=$?
if [[ $kind == ours && ${HMM_RACE:-1} == 1 ]]; then
	mkdir -p "$res/race"
	if "$here/kernel.sh" ours race | tee "$res/race/build.log"; then
		rm "$res/race/build.log"
		"$here/race-scope.py" "$(build_dir ours race)" "$BASE" "$TREE" "$TOP/patches" >"$res/race/scope.txt"
		HMM_BOOT_ARGS="hmm.only=hmm-tests+hmm-stress hmm.hmm-stress=-t+60" STRESS_ROUNDS=2 \
			STAGE_CONTINUE=1 stage boot-race "$here/boot.sh" "$(build_dir ours race)" test "$res/race" ||
			boot_rc=$?
	else
		boot_rc=1
	fi
fi
checks=
xfail=()
[[ $kind == ours ]] || xfail=(--xfail "$TOP/config/stock-xfail.list")
if [[ $kind == ours && ${HMM_CHECK:-1} == 1 ]]; then
	# The maintainer's checks (make check) count as tests of the series.
	"$here/check.sh" | grep -v '^check:' || true
	checks=$LOGS/check-verdicts.txt
fi
suffix=
[[ $kind == ours ]] || suffix=-$kind
ln -sfn "$(basename "$res")" "$RESULTS/latest$suffix"
rc=$((boot_rc != 0))
{
	echo "kernel: Linux $(base_version) $([[ $kind == ours ]] && echo '+ HMM series' || echo '(stock)'), $flavour flavour"
	"$here/results.py" "${xfail[@]}" "$res" $checks || true
} >"$res/summary.txt"
sed "\$d" "$res/summary.txt"
printf 'logs: %s (%.0fs in all)\n' "${res#"$TOP"/}" "$(echo "$(now) - $t0" | bc)"
tail -n 1 "$res/summary.txt"
grep -q ' 0 failed, 0 skipped$' "$res/summary.txt" || rc=1
exit $rc
