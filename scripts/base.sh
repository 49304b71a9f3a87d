#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Extract Debian's linux-source-6.12 once into the cache, pristine, and
# print its version. Nothing ever writes into $BASE afterwards.
. "$(dirname "$0")/lib.sh"

if [[ ! -f $BASE/.hmm-base-ok ]]; then
	[[ -f $TARBALL ]] || die "$TARBALL missing (apt-get install linux-source-6.12)"
	rm -rf "$BASE" "$BASE.tmp"
	mkdir -p "$BASE.tmp"
	tar -C "$BASE.tmp" --strip-components=1 -xJf "$TARBALL"
	touch "$BASE.tmp/.hmm-base-ok"
	mv "$BASE.tmp" "$BASE"
fi
echo "base: Linux $(base_version) ($(dpkg-query -W -f='${Package} ${Version}' linux-source-6.12 2>/dev/null || echo 'linux-source-6.12'))"
