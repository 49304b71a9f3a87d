#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""List the kernel functions whose data races are ours to fix.

Usage: race-scope.py BUILDDIR BASE TREE PATCHDIR >functions.txt

A KCSAN report names, for each of the two racing accesses, the function
that made it (static helpers inlined into it are part of it). The report
is ours, and fails make test, when one of those functions is
  - any function of a file the series supplies whole (mm/hmm.c,
    mm/migrate_device.c, mm/memremap.c, lib/test_hmm.c): every symbol
    of the object the build made of it (nm), or
  - a function of a base file that one of our patches adds or changes:
    found from a diff of the base's and the patched tree's copy, by kernel
    style (a function body opens with "{" and closes with "}" in the
    first column, its name is on the line with the first "(" above).
One name per line, sorted, "file function" so the report can say where.
"""
import os
import re
import subprocess
import sys

OURS = {
    'mm/hmm.c': 'mm/hmm.o',
    'mm/migrate_device.c': 'mm/migrate_device.o',
    'mm/memremap.c': 'mm/memremap.o',
    'lib/test_hmm.c': 'lib/test_hmm.ko',
}
HUNK = re.compile(r'^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@')
NAME = re.compile(r'([A-Za-z_]\w*)\s*\(')


def object_functions(path):
    """Text symbols an object defines (static ones included)."""
    out = subprocess.run(['nm', '--defined-only', path], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in 'tT':
            # gcc's clones (foo.constprop.0, foo.isra.0) report as foo.x
            names.add(parts[2].split('.')[0])
    return names


def enclosing(lines, n):
    """Name of the function whose body holds line @n (0-based), or None."""
    i = n
    while i >= 0:
        if lines[i].startswith('}') and i != n:
            return None
        if lines[i].startswith('{'):
            break
        i -= 1
    if i < 0:
        return None
    # the definition: the nearest first-column line with a "(" above "{"
    for j in range(i - 1, max(i - 12, -1), -1):
        line = lines[j]
        if line[:1].isspace() or not line or '(' not in line:
            continue
        m = NAME.search(line)
        return m.group(1) if m else None
    return None


def patched_files(patchdir):
    """The base files our patches change."""
    files = set()
    for name in os.listdir(patchdir):
        if not name.endswith('.patch'):
            continue
        with open(os.path.join(patchdir, name), errors='replace') as f:
            for line in f:
                if line.startswith('+++ b/'):
                    files.add(line[6:].split('\t')[0].strip())
    return files


def patched_functions(base, tree, path):
    """(file, function) for every line the series changes in one file,
    from a diff of the base's copy and the patched tree's (the patches'
    own line numbers are off by the patches applied before them)."""
    with open(os.path.join(tree, path), errors='replace') as t:
        src = t.read().splitlines()
    diff = subprocess.run(['diff', '-U0', os.path.join(base, path),
                           os.path.join(tree, path)],
                          capture_output=True, text=True).stdout
    found = set()
    for line in diff.splitlines():
        m = HUNK.match(line)
        if not m:
            continue
        first = int(m.group(1)) - 1
        count = 1 if m.group(2) is None else int(m.group(2))
        # a pure removal changes the function around its place
        for n in range(first, first + count) if count else [max(first, 0)]:
            name = enclosing(src, n)
            if name:
                found.add((path, name))
    return found


def main(build, base, tree, patchdir):
    entries = set()
    for src, obj in OURS.items():
        path = os.path.join(build, obj)
        if os.path.exists(path):
            entries.update((src, f) for f in object_functions(path))
    for path in sorted(patched_files(patchdir)):
        if path.endswith('.c'):
            entries |= patched_functions(base, tree, path)
    for src, func in sorted(entries):
        print(src, func)


if __name__ == '__main__':
    main(*sys.argv[1:5])
