#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make test: build the series (debug flavour unless FLAVOUR says otherwise),
# boot it, run every KUnit case and test program, judge the logs.
. "$(dirname "$0")/lib.sh"

flavour=${FLAVOUR:-debug}
here=$(dirname "$0")
t0=$(now)
"$here/kernel.sh" ours "$flavour"
take_lock
res=$RESULTS/$(date +%Y%m%d-%H%M%S)-$flavour
stage boot-and-test "$here/boot.sh" "$(build_dir ours "$flavour")" test "$res"
ln -sfn "$(basename "$res")" "$RESULTS/latest"
rc=0
"$here/results.py" "$res" >"$res/summary.txt" || true
sed "\$d" "$res/summary.txt"
printf 'logs: %s (%.0fs in all)\n' "${res#"$TOP"/}" "$(echo "$(now) - $t0" | bc)"
tail -n 1 "$res/summary.txt"
grep -q ' 0 failed, 0 skipped$' "$res/summary.txt" || rc=1
exit $rc
