#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Everything up to a bootable kernel + initramfs, one stage per line.
# Usage: kernel.sh ours|stock FLAVOUR
#   ours:  the base with linux/ and patches/ applied (the series)
#   stock: the unmodified base, for side-by-side benchmarks
. "$(dirname "$0")/lib.sh"

kind=$1 flavour=$2
out=$(build_dir "$kind" "$flavour")
here=$(dirname "$0")

stage deps "$here/deps.sh"
"$here/base.sh"
if [[ $kind == ours ]]; then
	src=$TREE
	stage tree "$here/tree.sh"
else
	src=$BASE
fi
take_lock
stage "config-$kind-$flavour" "$here/config.sh" "$src" "$out" "$flavour"
stage "kernel-$kind-$flavour" "$here/build.sh" "$src" "$out"
stage "guest-$kind-$flavour" "$here/userland.sh" "$src" "$out"
