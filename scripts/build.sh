#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build one kernel: bzImage, modules (installed into BUILDDIR/modroot) and
# the exported UAPI headers (BUILDDIR/usr) the test programs compile against.
# Usage: build.sh SRC BUILDDIR
. "$(dirname "$0")/lib.sh"

src=$1 out=$2
kmake() { make -C "$src" O="$out" ARCH=x86_64 CC="ccache gcc" -j"$JOBS" "$@"; }

kmake bzImage modules
rm -rf "$out/modroot"
kmake INSTALL_MOD_PATH="$out/modroot" INSTALL_MOD_STRIP=1 DEPMOD=/sbin/depmod modules_install
kmake INSTALL_HDR_PATH="$out/usr" headers_install
kmake -s kernelrelease >"$out/kernelrelease"
echo "built $(cat "$out/kernelrelease")"
