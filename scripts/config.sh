#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Configure one kernel build: x86_64 tinyconfig plus our fragments, then
# check that every option we asked for stuck.
# Usage: config.sh SRC BUILDDIR FLAVOUR
. "$(dirname "$0")/lib.sh"

src=$1 out=$2 flavour=$3
frags=("$TOP/config/default.config")
[[ $flavour == default ]] || frags+=("$TOP/config/$flavour.config")
for f in "${frags[@]}"; do [[ -f $f ]] || die "no config fragment $f"; done

# Regenerate only when the fragments or the patches (which may add Kconfig
# symbols) change, so that a rebuild does not touch .config.
sum=$(cat "${frags[@]}" "$TOP"/patches/* 2>/dev/null | sha1sum | cut -c1-16)
if [[ -f $out/.config && -f $out/.hmm-config && $(cat "$out/.hmm-config") == "$sum" ]]; then
	echo "config unchanged"
	exit 0
fi

mkdir -p "$out"
make -C "$src" O="$out" ARCH=x86_64 tinyconfig
cat "${frags[@]}" >>"$out/.config"
make -C "$src" O="$out" ARCH=x86_64 olddefconfig

bad=0
while read -r line; do
	[[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]] || continue
	opt=${BASH_REMATCH[1]} want=${BASH_REMATCH[2]}
	if [[ $want == n ]]; then
		grep -qx "$opt=[ym]" "$out/.config" && { echo "config: $opt is set, wanted off"; bad=1; }
	else
		grep -qx "$opt=$want" "$out/.config" ||
			{ echo "config: $opt=$want did not stick (got: $(grep "^$opt=" "$out/.config" || echo unset))"; bad=1; }
	fi
done < <(cat "${frags[@]}")
((bad == 0)) || die "requested config options did not stick"
echo "$sum" >"$out/.hmm-config"
