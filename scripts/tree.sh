#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Assemble the work tree: the pristine base, every file under linux/ at its
# kernel path (replacing the base's copy), then patches/series in order.
#
# The tree is a full copy made once. Each run computes the wanted content of
# every file that linux/ or a patch touches (now or last time) in a staging
# directory and rewrites only the files whose content changed, so untouched
# files keep their timestamps and a rebuild recompiles only what changed.
# A file that leaves linux/ goes back to the base's copy.
. "$(dirname "$0")/lib.sh"

tree=${1:-$TREE}
manifest=$tree/.hmm-manifest

if [[ ! -f $tree/.hmm-tree-ok ]]; then
	rm -rf "$tree"
	cp -a "$BASE" "$tree.tmp"
	rm -f "$tree.tmp/.hmm-base-ok"
	touch "$tree.tmp/.hmm-tree-ok"
	mv "$tree.tmp" "$tree"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# Files we own, relative paths.
mapfile -t ours < <(cd "$TOP/linux" 2>/dev/null && find . -type f | sed 's|^\./||' | sort)
for f in "${ours[@]}"; do
	mkdir -p "$stage/$(dirname "$f")"
	cp "$TOP/linux/$f" "$stage/$f"
done

# Files the patches touch: start from the base unless linux/ provides them.
patched=()
if [[ -f $TOP/patches/series ]]; then
	while read -r p; do
		[[ -z $p || $p == \#* ]] && continue
		[[ -f $TOP/patches/$p ]] || die "patches/series names missing $p"
		while read -r f; do
			patched+=("$f")
			if [[ ! -e $stage/$f && -f $BASE/$f ]]; then
				mkdir -p "$stage/$(dirname "$f")"
				cp "$BASE/$f" "$stage/$f"
			fi
		done < <(sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$TOP/patches/$p")
		patch -d "$stage" -p1 -s --no-backup-if-mismatch -F0 <"$TOP/patches/$p" ||
			die "patches/$p does not apply"
	done <"$TOP/patches/series"
fi

mapfile -t now < <(cd "$stage" && find . -type f | sed 's|^\./||' | sort)
changed=0
for f in "${now[@]}"; do
	if ! cmp -s "$stage/$f" "$tree/$f"; then
		mkdir -p "$tree/$(dirname "$f")"
		rm -f "$tree/$f"
		cp "$stage/$f" "$tree/$f"
		echo "  updated $f"
		changed=$((changed + 1))
	fi
done
# Files touched last time but not now: back to the base (or gone).
if [[ -f $manifest ]]; then
	while read -r f; do
		[[ -e $stage/$f ]] && continue
		if [[ -f $BASE/$f ]]; then
			cmp -s "$BASE/$f" "$tree/$f" || { rm -f "$tree/$f"; cp "$BASE/$f" "$tree/$f"; }
		else
			rm -f "$tree/$f"
		fi
		echo "  restored $f"
		changed=$((changed + 1))
	done <"$manifest"
fi
printf '%s\n' "${now[@]}" >"$manifest"
echo "tree: ${#ours[@]} file(s) from linux/, ${#patched[@]} patched, $changed changed"
