# SPDX-License-Identifier: GPL-2.0
# Shared settings and helpers for the build/boot/test scripts. Sourced, not run.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${HMM_CACHE:-$TOP/.cache}		# git-ignored, safe to delete
BASE=$CACHE/base-6.12			# pristine Debian linux-source-6.12
TREE=$CACHE/tree			# base + linux/ + patches/
RESULTS=${HMM_RESULTS:-$TOP/results}
LOGS=$CACHE/logs
TARBALL=/usr/src/linux-source-6.12.tar.xz
# One kernel build or QEMU run at a time on this machine, whoever asks.
LOCKFILE=/tmp/hmm-kbuild.lock
JOBS=${JOBS:-$(nproc)}
# hmm-stress rounds (driver reload between them) in make test and make
# stress; the one place that says how many. boot.sh passes it as hmm.rounds.
STRESS_ROUNDS=${STRESS_ROUNDS:-3}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.ccache}
export CCACHE_BASEDIR=$CACHE
export CCACHE_NOHASHDIR=1
export KBUILD_BUILD_TIMESTAMP='2026-01-01'
export KBUILD_BUILD_USER=hmm KBUILD_BUILD_HOST=hmm

mkdir -p "$CACHE" "$LOGS"

# build_dir NAME FLAVOUR -> directory of one kernel build (O=)
build_dir() { echo "$CACHE/build/$1-$2"; }

base_version() {
	local v
	v=$(sed -n 's/^VERSION = //p;s/^PATCHLEVEL = //p;s/^SUBLEVEL = //p' "$BASE/Makefile" | paste -sd.)
	echo "$v"
}

now() { date +%s.%N; }

# stage NAME CMD...: run CMD with its output in $LOGS/NAME.log and print one
# line with the stage name and its elapsed time; on failure show the log's
# tail and stop (or return the status when STAGE_CONTINUE=1).
stage() {
	local name=$1 t0 rc=0 log
	shift
	log=$LOGS/$name.log
	t0=$(now)
	printf '%-24s ' "$name"
	"$@" >"$log" 2>&1 || rc=$?
	if ((rc)); then
		printf 'FAILED after %.1fs (exit %d); last lines of %s:\n' \
			"$(echo "$(now) - $t0" | bc)" "$rc" "$log"
		tail -n 30 "$log" | sed 's/^/    /'
		[[ ${STAGE_CONTINUE:-0} == 1 ]] && return "$rc"
		exit "$rc"
	fi
	printf 'ok %7.1fs\n' "$(echo "$(now) - $t0" | bc)"
}

# Hold the machine-wide build lock for the rest of this script.
take_lock() {
	# A child of a script that holds the lock shares it.
	[[ ${HMM_LOCK_HELD:-} == 1 ]] && return 0
	export HMM_LOCK_HELD=1
	exec 9>"$LOCKFILE"
	if ! flock -n 9; then
		echo "waiting for another kernel build or QEMU run to finish ($LOCKFILE)"
		flock 9
	fi
}

die() { echo "error: $*" >&2; exit 1; }

[[ $STRESS_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "STRESS_ROUNDS=$STRESS_ROUNDS: want a number of rounds, 1 or more"
