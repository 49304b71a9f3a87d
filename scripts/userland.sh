#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the guest programs statically against a built tree's UAPI headers
# and pack them, busybox and the test module into an initramfs.
# Usage: userland.sh SRC BUILDDIR
. "$(dirname "$0")/lib.sh"

src=$1 out=$2
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
cc hmm-tests "$src/tools/testing/selftests/mm/hmm-tests.c"
cc hmm-demo "$TOP/guest/hmm-demo.c"
for c in "$TOP"/guest/tests/*.c; do
	[[ -f $c ]] && cc "$(basename "$c" .c)" "$c"
done

cp "$bin/hmm-demo" "$root/bin/"
cp "$bin/hmm-tests" "$root/tests/"
for c in "$TOP"/guest/tests/*.c; do
	[[ -f $c ]] && cp "$bin/$(basename "$c" .c)" "$root/tests/"
done
[[ -x $bin/hmm-bench ]] && cp "$bin/hmm-bench" "$root/bin/"
cp /bin/busybox "$root/bin/busybox"
cp -a "$out/modroot/lib/modules" "$root/lib/"
install -m 755 "$TOP/guest/init" "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initramfs.cpio.gz"
echo "initramfs: $(du -h "$out/initramfs.cpio.gz" | cut -f1)"
