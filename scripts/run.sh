#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make run: build the series (default flavour), boot it and run the demo;
# a shell afterwards when stdin is a terminal, power off otherwise.
# Non-interactive, it exits non-zero when the demo failed or QEMU did (a
# timeout, HMM_TIMEOUT, default 600 s), after showing what the demo printed.
. "$(dirname "$0")/lib.sh"

flavour=${FLAVOUR:-default}
here=$(dirname "$0")
"$here/kernel.sh" ours "$flavour"
out=$(build_dir ours "$flavour")
interactive=0
[[ -t 0 ]] && interactive=1
echo "booting Linux $(cat "$out/kernelrelease") + HMM series in QEMU (TCG)..."
take_lock
rc=0
HMM_TIMEOUT=${HMM_TIMEOUT:-600} "$here/boot.sh" "$out" demo "$RESULTS/run" "$interactive" || rc=$?
if ((!interactive)); then
	# Non-interactive: the demo printed on serial 0; show it without
	# the kernel's own messages.
	grep -v '^\[ *[0-9]*\.[0-9]*\]' "$RESULTS/run/console.log" | grep -v '^$' || true
	grep -q '^demo done' "$RESULTS/run/console.log" || rc=1
fi
exit $rc
