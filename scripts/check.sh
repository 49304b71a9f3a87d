#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make check: what a maintainer runs before taking the series.
#   checkpatch --strict on every patch of the series and on every file we own
#   scripts/kernel-doc -Wall on our kernel files
#   W=1 and sparse (C=2) builds of our kernel objects, no warnings
#   every in-tree user of our headers compiled, and link-checked
#   against our objects (scripts/users-check.py)
#   Documentation/mm built with Sphinx: no warning about our pages or files
#   the KUnit suites the kernel's own way, kunit.py with mm/tests/.kunitconfig
#   in QEMU (its own kernel in .cache/build/kunit-py): every case passes,
#   and as many ran as mm/tests/*-kunit.h list
. "$(dirname "$0")/lib.sh"

here=$(dirname "$0")
out=$(build_dir ours check)
mapfile -t owned < <(cd "$TOP/linux" && find . -type f \( -name '*.[ch]' \) ! -path './tools/*' | sed 's|^\./||' | sort)
mapfile -t objs < <(printf '%s\n' "${owned[@]}" | grep '\.c$' | sed 's/\.c$/.o/')
mapfile -t users < <(grep -v '^#' "$TOP/config/users.list")

checkpatch() {
	local bad=0 p
	# The series as a reviewer receives it (make series, without builds),
	# signed off by the git identity; a clone without one (CI) gets a
	# marked placeholder and a note, which is enough for checkpatch. Kept
	# out of out/series, which holds only what make series made and proved.
	"$here/series.py" "$TOP" "$CACHE" "$BASE" "$TREE" "$CACHE/check-series" "$out" --no-build \
		--allow-placeholder-identity
	# FILE_PATH_CHANGES ("does MAINTAINERS need updating?") is asked of
	# every patch that adds a file; the check below answers it for real.
	for p in "$CACHE"/check-series/0*.patch "$TOP"/patches/*.patch; do
		[[ -e $p && $p != */0000-cover-letter.patch ]] || continue
		(cd "$TREE" && scripts/checkpatch.pl --strict --no-tree -q \
			--ignore FILE_PATH_CHANGES "$p") || bad=1
	done
	# Every file we own has a MAINTAINERS entry of its own subsystem.
	(cd "$TOP/linux" && find . -type f | sed 's|^\./||' | sort) |
	while read -r f; do
		(cd "$TREE" && perl scripts/get_maintainer.pl --no-git --no-git-fallback \
			--subsystem --no-email --no-l --no-rolestats -f "$f" |
			grep -qv '^THE REST$') || echo "no MAINTAINERS entry: $f"
	done | tee -a /dev/stderr | grep -q . && bad=1
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

kunit_py() {
	local d=$CACHE/build/kunit-py json=$LOGS/kunit-py.json want
	want=$(cat "$TREE"/mm/tests/*-kunit.h | grep -cE '^\s*KUNIT_CASE(_PARAM)?\(')
	rm -f "$json"
	# kunit.py fails on any failed case; its JSON says how many ran.
	(cd "$TREE" && ./tools/testing/kunit/kunit.py run --arch=x86_64 --kunitconfig=mm/tests \
		--build_dir="$d" --jobs="$JOBS" --make_options "CC=ccache gcc" \
		--timeout=900 --json="$json") || return 1
	python3 - "$json" "$want" <<-'EOF'
	import json, sys
	top, want = json.load(open(sys.argv[1])), int(sys.argv[2])
	suites = {'memremap', 'hmm', 'migrate_device'}
	ran, passed = 0, 0
	for s in top['sub_groups']:
	    if s['name'] not in suites:
	        continue
	    suites.discard(s['name'])
	    # A parameterised case is a group of its parameters: one case.
	    for c in s['test_cases'] + s['sub_groups']:
	        ok = c['status'] == 'PASS' if 'status' in c else \
	            all(p['status'] == 'PASS' for p in c['test_cases'])
	        ran += 1
	        passed += ok
	        if not ok:
	            print('not passed: %s.%s' % (s['name'], c['name']))
	if suites:
	    print('suites that did not run: ' + ' '.join(sorted(suites)))
	print('%d cases passed (%d ran, %d expected from mm/tests/*-kunit.h)' % (passed, ran, want))
	sys.exit(0 if not suites and passed == ran and ran >= want else 1)
	EOF
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
check kunit-py kunit_py
echo "check: $( ((rc)) && echo FAILED || echo clean)"
exit $rc
