#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make check: what a maintainer runs before taking the series.
#   checkpatch --strict on every patch of the series and on every file we own
#   scripts/kernel-doc -Wall on our kernel files
#   W=1 and sparse (C=2) builds of our kernel objects, no warnings
#   every in-tree user of our headers compiled, and link-checked
#   against our objects (scripts/users-check.py)
#   Documentation/mm built with Sphinx: no warning about our pages or files
. "$(dirname "$0")/lib.sh"

here=$(dirname "$0")
out=$(build_dir ours check)
mapfile -t owned < <(cd "$TOP/linux" && find . -type f \( -name '*.[ch]' \) ! -path './tools/*' | sed 's|^\./||' | sort)
mapfile -t objs < <(printf '%s\n' "${owned[@]}" | grep '\.c$' | sed 's/\.c$/.o/')
mapfile -t users < <(grep -v '^#' "$TOP/config/users.list")

checkpatch() {
	local bad=0 p
	# The series as a reviewer receives it (make series, without builds).
	"$here/series.py" "$TOP" "$CACHE" "$BASE" "$TREE" "$TOP/out/series" "$out" --no-build
	for p in "$TOP"/out/series/0*.patch "$TOP"/patches/*.patch; do
		[[ -e $p && $p != */0000-cover-letter.patch ]] || continue
		(cd "$TREE" && scripts/checkpatch.pl --strict --no-tree -q "$p") || bad=1
	done
	(cd "$TOP/linux" && find . -type f \( -name '*.[ch]' \) | sed 's|^\./||' | sort) |
	while read -r f; do
		# checkpatch -f run from the tree so it finds its spelling list.
		(cd "$TREE" && scripts/checkpatch.pl --strict --no-tree -q --show-types \
			--ignore FILE_PATH_CHANGES,SPDX_LICENSE_TAG -f "$f") || echo "BAD $f"
	done | tee -a /dev/stderr | grep -q . && bad=1
	return $bad
}

kerneldoc() {
	local files=("${owned[@]/#/$TREE/}")
	local out
	out=$("$TREE/scripts/kernel-doc" -Wall -none "${files[@]}" 2>&1)
	[[ -z $out ]] || { echo "$out"; return 1; }
}

w1_sparse() {
	local log
	((${#objs[@]})) || return 0
	make -C "$TREE" O="$out" ARCH=x86_64 CC="ccache gcc" -j"$JOBS" W=1 C=2 "${objs[@]}" 2>&1 | tee "$LOGS/w1-sparse.raw"
	! grep -E "^[^ ]*($(printf '%s|' "${owned[@]}" | sed 's/|$//')):[0-9]+(:[0-9]+)?: (warning|error)" "$LOGS/w1-sparse.raw"
}

users() {
	make -C "$TREE" O="$out" ARCH=x86_64 CC="ccache gcc" -j"$JOBS" -k "${users[@]}" ||
		{ echo "users: some objects did not compile against the series"; return 1; }
	mapfile -t cs < <(printf '%s\n' "${owned[@]}" | grep '\.c$')
	"$here/users-check.py" "$BASE" "$TREE" "$out" "${cs[@]}" -- "${users[@]}"
}

docs() {
	local d=$CACHE/build/docs
	mkdir -p "$d"
	make -C "$TREE" O="$d" SPHINXDIRS=mm htmldocs 2>&1 | tee "$LOGS/docs.raw"
	# Our pages, and kernel-doc they pull in from any file ("hmm:NN: file:").
	! grep -E "Documentation/mm/(hmm|hmm-devmem)(\.rst)?:|$(printf '%s|' "${owned[@]}" | sed 's/|$//')" "$LOGS/docs.raw" |
		grep -iE 'warning|error'
}

stage deps "$here/deps.sh" --docs
"$here/base.sh"
stage tree "$here/tree.sh"
rc=0
STAGE_CONTINUE=1
verdicts=$LOGS/check-verdicts.txt
: >"$verdicts"
# check NAME FUNCTION: one check, its verdict recorded for make test.
check() {
	if stage "$1" "$2"; then
		echo "ok $1" >>"$verdicts"
	else
		echo "not ok $1 (see .cache/logs/$1.log)" >>"$verdicts"
		rc=1
	fi
}
check checkpatch checkpatch
check kernel-doc kerneldoc
take_lock
STAGE_CONTINUE=0 stage config-check "$here/config.sh" "$TREE" "$out" users
check w1-sparse w1_sparse
check users users
check docs docs
echo "check: $( ((rc)) && echo FAILED || echo clean)"
exit $rc
