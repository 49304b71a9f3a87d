#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the guest programs statically against a built kernel's UAPI headers
# and pack them, busybox and that kernel's test module into an initramfs.
# The programs always come from the series' tree (our selftests, demo and
# bench, our test_hmm_uapi.h, a superset of 6.12's), so the same tests run
# on the stock kernel too; hmm-6.12 is the base's own selftest.
# Usage: userland.sh BUILDDIR
. "$(dirname "$0")/lib.sh"

out=$1
src=$TREE
root=$out/initramfs
bin=$out/guest-bin
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,tests,lib} "$bin"

cc() {
	local o=$1
	shift
	gcc -static -O2 -g -Wall -I"$out/usr/include" -I"$src" \
		-I"$src/tools/testing/selftests" "$@" -o "$bin/$o" -lpthread
}
# hmm-tests the kselftest way: tools/testing/selftests/mm/Makefile builds
# it like every mm selftest (linked with vm_util.c and thp_settings.c), here
# statically and into our own directory. That Makefile also writes the
# local_config.{h,mk} it probes for into the tree, as in any kernel tree.
# Always rebuilt: the Makefile does not know that it depends on
# lib/test_hmm_uapi.h and the UAPI headers. The guest runs it through the
# base's own test_hmm.sh, shipped beside it as a kselftest install has them.
ks=$src/tools/testing/selftests/mm
rm -rf "$bin/kselftest-mm"
mkdir -p "$bin/kselftest-mm"
make -C "$ks" OUTPUT="$bin/kselftest-mm" EXTRA_CFLAGS=-g LDFLAGS=-static \
	KHDR_INCLUDES="-isystem $out/usr/include" "$bin/kselftest-mm/hmm-tests"
# Linux 6.12's own selftest, untouched, against our uapi header (-I$src
# resolves its <lib/test_hmm_uapi.h>): the proof that a program written
# for 6.12's driver reads the same answers from ours.
cc hmm-6.12 "$BASE/tools/testing/selftests/mm/hmm-tests.c"
cc hmm-demo "$TOP/guest/hmm-demo.c"
cc hmm-bench "$TOP/guest/hmm-bench.c"
for c in "$TOP"/guest/tests/*.c; do
	[[ -f $c ]] && cc "$(basename "$c" .c)" "$c"
done

cp "$bin/hmm-demo" "$root/bin/"
cp "$bin/hmm-6.12" "$root/tests/"
mkdir -p "$root/kselftest/mm"
cp "$bin/kselftest-mm/hmm-tests" "$ks/test_hmm.sh" "$root/kselftest/mm/"
# /init runs what /tests holds; with arguments for hmm-tests it runs the
# program directly, without them through test_hmm.sh.
ln -s ../kselftest/mm/hmm-tests "$root/tests/hmm-tests"
for c in "$TOP"/guest/tests/*.c; do
	[[ -f $c ]] && cp "$bin/$(basename "$c" .c)" "$root/tests/"
done
# make bench puts one shared binary into every kernel's image.
cp "${HMM_BENCH_BIN:-$bin/hmm-bench}" "$root/bin/hmm-bench"
cp /bin/busybox "$root/bin/busybox"
# test_hmm.sh is a bash script (busybox sh has no BASH_SOURCE).
cp /bin/bash-static "$root/bin/bash"
cp -a "$out/modroot/lib/modules" "$root/lib/"
install -m 755 "$TOP/guest/init" "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initramfs.cpio.gz"
echo "initramfs: $(du -h "$out/initramfs.cpio.gz" | cut -f1)"
