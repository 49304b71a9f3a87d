#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Link check of the in-tree users of the files we own, without linking
amdgpu and friends: every symbol a user object needs that the base's copy
of one of our files provided must still be provided by ours, and exported
if the base exported it (modules can only link exported symbols).

Usage: users-check.py BASE TREE BUILDDIR OWNED_C_FILES... -- USER_OBJS...
"""
import re
import subprocess
import sys

EXPORT = re.compile(r'^EXPORT_SYMBOL(?:_GPL)?\((\w+)\)', re.M)
# A non-static definition at column 0: "type name(" / "type *name(".
DEFN = re.compile(r'^(?!static\b)(?:[A-Za-z_][\w ]*[\s*])(\w+)\([^;]*$', re.M)


def syms(objs, flag):
    out = subprocess.run(['nm', flag] + objs, capture_output=True, text=True).stdout
    return {l.split()[-1] for l in out.splitlines() if l.strip() and not l.endswith(':')}


def main():
    base, tree, build = sys.argv[1:4]
    sep = sys.argv.index('--')
    owned, users = sys.argv[4:sep], sys.argv[sep + 1:]
    base_exp, base_def, our_exp = set(), set(), set()
    for f in owned:
        try:
            src = open('%s/%s' % (base, f)).read()
        except FileNotFoundError:
            continue
        base_exp |= set(EXPORT.findall(src))
        base_def |= set(DEFN.findall(src))
        our_exp |= set(EXPORT.findall(open('%s/%s' % (tree, f)).read()))
    base_def |= base_exp
    ours = syms(['%s/%s' % (build, f[:-2] + '.o') for f in owned], '--defined-only')
    bad = 0
    for obj in users:
        path = '%s/%s' % (build, obj)
        need = syms([path], '-u') & base_def
        for s in sorted(need):
            if s not in ours:
                print('%s: needs %s, which the base defined and ours does not' % (obj, s))
                bad += 1
            elif s in base_exp and s not in our_exp:
                print('%s: needs %s, which the base exported and ours does not' % (obj, s))
                bad += 1
    print('users: %d objects, %d missing symbols' % (len(users), bad))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
