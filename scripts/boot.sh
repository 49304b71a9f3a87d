#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Boot a built kernel in QEMU (TCG) with the test machine layout:
# q35, 2 vCPUs, 5 GiB of RAM (q35 puts 2 GiB below 4 GiB and 3 GiB above),
# memmap=512M!4G carving two 256 MiB windows of the high RAM for the
# DEVICE_COHERENT test devices, and in test mode one 1 GiB huge page so
# hugetlb PUD mappings can be mirrored (it needs a free, 1 GiB-aligned GiB
# of RAM after early boot allocations, which sit at the top of memory: a
# 3 GiB or 4 GiB guest has none left).
# HMM_SMALL=1 boots the small machine of the memory-pressure run instead:
# 1.5 GiB, all below 4 GiB, the coherent windows carved at 1 GiB
# (memmap=512M!1G), which leaves the kernel 1 GiB of RAM.
# A sparse file on the host is the guest's virtio disk /dev/vda, which the
# guest's init makes its swap (HMM_SWAP, default 1G; 0 for none), so that
# reclaim can push anonymous pages out while migrations run.
# HMM_SWAP_OPTS adds QEMU -drive options to it, e.g. a slow disk:
# HMM_SWAP_OPTS=,throttling.iops-total=10
# HMM_ICOUNT=1 runs single-threaded TCG with -icount shift=0,sleep=off:
# every guest instruction advances the guest clock by 1 ns, so guest
# timings count instructions, not host time, and repeat to within a
# fraction of a percent whatever else the host runs (make bench). It is
# slower than the default multi-threaded TCG and excludes HMM_KVM=1.
# In test and stress mode the guest runs hmm-stress in STRESS_ROUNDS rounds
# (default in lib.sh), passed as hmm.rounds=N; HMM_BOOT_ARGS can override it.
# Usage: boot.sh BUILDDIR MODE RESULTDIR [interactive]
#   Serial port 0 (kernel console) -> RESULTDIR/console.log
#   Serial port 1 (test output)    -> RESULTDIR/tests.log
# Exits non-zero when QEMU does: 124 when the guest ran past HMM_TIMEOUT
# (default 1800 s), after printing the console's tail. The logs are judged
# by the caller (results.py), which reports a run that never reached its end.
. "$(dirname "$0")/lib.sh"

out=$1 mode=$2 res=$3 interactive=${4:-0}
timeout=${HMM_TIMEOUT:-1800}
mkdir -p "$res"
if [[ ${HMM_SMALL:-0} == 1 ]]; then
	mem=${HMM_MEM:-1536M} carve='memmap=512M!1G' spm=0x40000000+0x50000000
else
	mem=${HMM_MEM:-5G} carve='memmap=512M!4G' spm=0x100000000+0x110000000
fi
append="console=ttyS0 $carve hmm.spm=$spm hmm.mode=$mode hmm.interactive=$interactive"
append+=" panic=-1 tsc=reliable clocksource=tsc loglevel=7"
[[ $mode == test && ${HMM_SMALL:-0} != 1 ]] && append+=" hugepagesz=1G hugepages=1"
[[ $mode == test || $mode == stress ]] && append+=" hmm.rounds=$STRESS_ROUNDS"
append+=" ${HMM_BOOT_ARGS:-}"
[[ -n ${HMM_ARGS:-} ]] && append+=" hmm.args=$HMM_ARGS"
accel=(-accel tcg,thread=multi)
if [[ ${HMM_ICOUNT:-0} == 1 ]]; then
	[[ ${HMM_KVM:-0} == 1 ]] && die "HMM_ICOUNT=1 needs TCG; drop HMM_KVM=1"
	# QEMU refuses icount with multi-threaded TCG.
	accel=(-accel "tcg,thread=single" -icount "shift=0,sleep=off")
fi
[[ ${HMM_KVM:-0} == 1 ]] && accel=(-accel kvm -cpu host)

qemu=(qemu-system-x86_64 -machine q35 "${accel[@]}" -smp 2 -m "$mem"
      -kernel "$out/arch/x86/boot/bzImage" -initrd "$out/initramfs.cpio.gz"
      -append "$append" -no-reboot -display none -nodefaults -vga none)
[[ ${HMM_KVM:-0} == 1 ]] || qemu+=(-cpu max)
swap=${HMM_SWAP:-1G}
if [[ $swap != 0 ]]; then
	swapimg=$res/swap.img
	rm -f "$swapimg"
	truncate -s "$swap" "$swapimg"
	qemu+=(-drive "file=$swapimg,format=raw,if=virtio,cache=unsafe${HMM_SWAP_OPTS:-}")
	trap 'rm -f "$swapimg"' EXIT
fi

if ((interactive)); then
	"${qemu[@]}" -serial mon:stdio -serial null
	exit
fi
rm -f "$res/console.log" "$res/tests.log"
rc=0
timeout --foreground "$timeout" "${qemu[@]}" -monitor none \
	-serial "file:$res/console.log" -serial "file:$res/tests.log" </dev/null || rc=$?
if ((rc == 124)); then
	echo "QEMU timed out after ${timeout}s (HMM_TIMEOUT); last lines of the console:"
	tail -n 25 "$res/console.log"
elif ((rc)); then
	echo "QEMU exited with status $rc; last lines of the console:"
	tail -n 25 "$res/console.log" 2>/dev/null || true
fi
exit $rc
