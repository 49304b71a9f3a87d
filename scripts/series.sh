#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make series: format-patch series + cover letter under out/series, proven
# to apply to the pristine base, to build patch by patch, and to equal the
# tree make test tests. SERIES_BUILD=0 skips the per-patch builds.
# The commits, patches and cover letter are from and signed off by whoever
# runs it (git config user.name and user.email); with either unset it
# refuses before doing anything, saying how to set them.
. "$(dirname "$0")/lib.sh"

here=$(dirname "$0")
"$here/series.py" --identity "$TOP"
out=$(build_dir series default)
stage deps "$here/deps.sh"
"$here/base.sh"
stage tree "$here/tree.sh"
take_lock
stage config-series "$here/config.sh" "$TREE" "$out" default
nb=
[[ ${SERIES_BUILD:-1} == 0 ]] && nb=--no-build
stage series "$here/series.py" "$TOP" "$CACHE" "$BASE" "$TREE" "$TOP/out/series" "$out" $nb
grep '^series:' "$LOGS/series.log"
