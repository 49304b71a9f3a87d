#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make bench: the unmodified base ("stock") and the series ("ours"), same
# default-flavour config, same QEMU machine, same bench binary (6.12 ABI
# only), booted alternately for each repetition.
# Knobs: BENCH_SIZES=2,32,256 (MiB)  BENCH_REPS=5  BENCH_WORKLOADS=all
#        BENCH_MEM=4k,thp  BENCH_QUICK=1 (2,32 MiB and 3 repetitions)
. "$(dirname "$0")/lib.sh"

here=$(dirname "$0")
sizes=${BENCH_SIZES:-2,32,256}
reps=${BENCH_REPS:-5}
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	sizes=${BENCH_SIZES:-2,32}
	reps=${BENCH_REPS:-3}
fi
args="-s+$sizes+-m+${BENCH_MEM:-4k,thp}"
[[ -n ${BENCH_WORKLOADS:-} ]] && args+="+-w+$BENCH_WORKLOADS"

stage deps-bench "$here/deps.sh" --bench
# One bench binary, built once, goes into both kernels' initramfs.
"$here/kernel.sh" ours default
cp "$(build_dir ours default)/guest-bin/hmm-bench" "$CACHE/hmm-bench"
export HMM_BENCH_BIN=$CACHE/hmm-bench
"$here/kernel.sh" stock default
"$here/kernel.sh" ours default

res=$RESULTS/bench-$(date +%Y%m%d-%H%M%S)
mkdir -p "$res"
take_lock
for ((r = 1; r <= reps; r++)); do
	for kind in stock ours; do
		HMM_ARGS=$args HMM_TIMEOUT=${HMM_TIMEOUT:-1200} \
			stage "bench-$kind-$r" "$here/boot.sh" "$(build_dir "$kind" default)" bench "$res/$kind-$r"
		log=$res/$kind-$r/tests.log
		grep -q '^BENCH-CLOCK' "$log" ||
			die "bench on $kind did not start; see $res/$kind-$r/"
		grep -q 'not fine-grained' "$log" &&
			die "the guest clock is not fine-grained; refusing to report"
		grep -q 'rc=0' "$log" || die "bench on $kind failed; see $log"
		grep '^BENCH ' "$log" | sed "s/^/$kind $r /" >>"$res/raw.txt"
	done
done
ln -sfn "$(basename "$res")" "$RESULTS/bench-latest"
"$here/bench-report.py" "$res"
