#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make bench: the unmodified base ("stock") and the series ("ours"), same
# default-flavour config, same QEMU machine, same bench binary (6.12 ABI
# only). Two figures:
# 1. primary, guest-instruction time: each kernel booted with QEMU icount
#    (boot.sh HMM_ICOUNT=1), where the guest clock counts the instructions
#    the guest executes; a second boot gives the same numbers to within a
#    fraction of a percent, so one boot per kernel is enough
#    (BENCH_ICOUNT_REPS=2 adds a confirming one) -> raw-icount.txt
# 2. secondary, wall-clock: plain multi-threaded TCG, BENCH_REPS boots per
#    kernel, alternating; reported as medians with their spread, which
#    under TCG is 20-80 % between boots of one kernel -> raw.txt
# bench-report.py prints both tables; bench.csv and bench.png are the
# primary figure, bench-wallclock.csv the secondary.
# Knobs: BENCH_SIZES=2,32,256 (MiB)  BENCH_REPS=5 (0: no wall-clock runs)
#        BENCH_ICOUNT_REPS=1 (0: no icount runs)  BENCH_WORKLOADS=all
#        BENCH_MEM=4k,thp,64k  BENCH_QUICK=1 (2,32 MiB and 3 repetitions)
#        HMM_TIMEOUT: per boot, default 1200 s (icount boots: 2400 s)
. "$(dirname "$0")/lib.sh"

here=$(dirname "$0")
sizes=${BENCH_SIZES:-2,32,256}
reps=${BENCH_REPS:-5}
icount_reps=${BENCH_ICOUNT_REPS:-1}
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	sizes=${BENCH_SIZES:-2,32}
	reps=${BENCH_REPS:-3}
fi
[[ $reps =~ ^[0-9]+$ ]] || die "BENCH_REPS=$reps: want a number, 0 or more"
[[ $icount_reps =~ ^[0-9]+$ ]] ||
	die "BENCH_ICOUNT_REPS=$icount_reps: want a number, 0 or more"
((reps + icount_reps)) || die "BENCH_REPS=0 and BENCH_ICOUNT_REPS=0: nothing to run"
args="-s+$sizes+-m+${BENCH_MEM:-4k,thp,64k}"
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

# bench_boot KIND NAME RAW ICOUNT TIMEOUT: boot KIND's kernel in bench mode
# (HMM_ICOUNT=ICOUNT), results in $res/NAME; append its BENCH lines to
# $res/RAW as "KIND REP BENCH ...", REP being the last number in NAME.
bench_boot() {
	local kind=$1 name=$2 raw=$3 icount=$4 timeout=$5 log

	HMM_ICOUNT=$icount HMM_TIMEOUT=$timeout HMM_ARGS=$args \
		stage "bench-$name" "$here/boot.sh" "$(build_dir "$kind" default)" \
		bench "$res/$name"
	log=$res/$name/tests.log
	grep -q '^BENCH-CLOCK' "$log" ||
		die "bench on $kind did not start; see $res/$name/"
	grep -q 'not fine-grained' "$log" &&
		die "the guest clock is not fine-grained; refusing to report"
	grep -q 'rc=0' "$log" || die "bench on $kind failed; see $log"
	grep '^BENCH ' "$log" | sed "s/^/$kind ${name##*-} /" >>"$res/$raw"
	# rows the kernel cannot run (stock: migrating 64 KiB folios)
	grep '^BENCH-NA ' "$log" | sed "s/^/$kind ${name##*-} /" >>"$res/na.txt" || true
}

for ((r = 1; r <= icount_reps; r++)); do
	for kind in stock ours; do
		bench_boot "$kind" "$kind-icount-$r" raw-icount.txt 1 \
			"${HMM_TIMEOUT:-2400}"
	done
done
for ((r = 1; r <= reps; r++)); do
	for kind in stock ours; do
		bench_boot "$kind" "$kind-$r" raw.txt 0 "${HMM_TIMEOUT:-1200}"
	done
done
ln -sfn "$(basename "$res")" "$RESULTS/bench-latest"
"$here/bench-report.py" "$res"
