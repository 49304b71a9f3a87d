#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn one test run's serial logs into a verdict.

console.log (serial 0) holds the kernel log: KUnit's KTAP and any splat.
tests.log (serial 1) holds the guest's test programs, framed by
"HMM-HARNESS: begin NAME" / "HMM-HARNESS: end NAME rc=N" lines.

Every KUnit case and every selftest counts as passed, failed or skipped.
A kernel splat, a program that died without reporting, a kmemleak report
or a run that never reached "done" counts as a failure and is named.
A kmemleak failure shows the report's first lines; a failed selftest shows
the diagnostic lines ("# ...") it printed, so that a CI log alone says why.
A subdirectory "pressure" (make test's second, small-guest boot) is judged
the same way, its results named "pressure/...", and so is "race" (the boot
of the KCSAN kernel, "race/..."). A KCSAN data-race report fails the run
when one of its two racing accesses was made by a function of ours, as
listed in race/scope.txt (scripts/race-scope.py): it is shown whole, both
stacks. A report entirely in other base code is listed ("NOTE  ") and does
not fail the run; each one is for somebody to look at once.
Prints the failures, then "N passed, N failed, N skipped" as its last line.
With a second argument, make check's verdicts (lines "ok NAME" / "not ok
NAME") count as tests too.
With --xfail LIST (make test-stock: config/stock-xfail.list), a failure
or skip the list names is expected: it is shown as "XFAIL " and counts as
passed, since what was asserted (that the unmodified kernel fails it, or
lacks what it needs) held. A
list entry that matches no failure fails the run (the list is stale),
unless the entry starts with "?" (a failure that is not certain to show,
a race on the unmodified kernel say). Entries are fnmatch patterns over
the first line of a failure, "#" starts a comment.
Exit status 0 only with no failure and no skip.
"""
import fnmatch
import os
import re
import sys

TS = re.compile(r'^\[\s*\d+\.\d+\]\s?')
TAP = re.compile(r'^(\s*)(ok|not ok) (\d+) (?:- )?(.*?)(?:\s+#\s*(SKIP|skip|XFAIL|TODO)\b.*)?$')
SPLATS = [
    r'WARNING: ', r'BUG: ', r'Oops', r'KASAN:', r'UBSAN:',
    r'general protection fault', r'Kernel panic',
    r'possible circular locking dependency', r'inconsistent lock state',
    r'possible recursive locking', r'suspicious RCU usage',
    r'INFO: task .* blocked',
    r'refcount_t: ', r'list_add corruption', r'list_del corruption',
    r'Bad page state', r'Bad rss-counter', r'page dumped because',
]
SPLAT = re.compile('|'.join(SPLATS))
KCSAN = 'BUG: KCSAN: '
# the line before each stack of a KCSAN report: who made the access
ACCESS = re.compile(r'^(?:race at unknown origin, with )?.*\b(?:read|write)\b.* '
                    r'to 0x[0-9a-f]+ of \d+ bytes by (?:task \d+|interrupt) on cpu \d+:$')
FRAME = re.compile(r'^\s*([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+')
REPORT_LINES = 40
DIAG_LINES = 8


def read(path):
    try:
        with open(path, errors='replace') as f:
            return f.read().replace('\r', '').splitlines()
    except FileNotFoundError:
        return []


def kmemleak_head(console, lines=12):
    """The first lines of the kmemleak report the guest copied to the console."""
    for i, line in enumerate(console):
        if line.startswith('unreferenced object'):
            return '\n    ' + '\n    '.join(console[i:i + lines])
    return ' (see console.log)'


def read_scope(path):
    """function -> file, for the functions whose races are ours."""
    scope = {}
    for line in read(path):
        parts = line.split()
        if len(parts) == 2:
            scope[parts[1]] = parts[0]
    return scope


def kcsan_reports(console, scope, failed, notes):
    """Judge each KCSAN report of the console: ours fails, base is noted."""
    i = 0
    while i < len(console):
        if not console[i].startswith(KCSAN):
            i += 1
            continue
        title = console[i].strip()
        end = i + 1
        while end < len(console) and not console[end].startswith('====='):
            end += 1
        block = console[i:end]
        tops = []
        for j, line in enumerate(block[:-1]):
            if ACCESS.match(line):
                m = FRAME.match(block[j + 1])
                if m:
                    tops.append(m.group(1).split('.')[0])
        mine = ['%s %s' % (scope[f], f) for f in tops if f in scope]
        if mine:
            failed.append('kcsan: %s (in our code: %s; console.log line %d)%s' %
                          (title, ', '.join(sorted(set(mine))), i + 1,
                           ''.join('\n    ' + l for l in block[:REPORT_LINES])))
        else:
            notes.append('kcsan: %s, in base code only (console.log line %d)'
                         % (title, i + 1))
        i = end


def judge(resdir, passed, failed, skipped, notes):
    """Add one boot's results to the lists."""
    build = read(resdir + '/build.log')
    if build:
        failed.append('build: the kernel of this boot did not build:\n    ' +
                      '\n    '.join(build[-15:]))
        return
    console = [TS.sub('', l) for l in read(resdir + '/console.log')]
    tests = read(resdir + '/tests.log')

    # KUnit: cases are the results one level inside a suite; each
    # parameter of a parameterised case (one level further in, under the
    # case's own "# Subtest:") counts as a case of its own, and the case's
    # summary line then only when none of its parameters reported.
    suite, pcase, pcount = None, None, 0
    for line in console:
        m = TAP.match(line)
        if not m:
            s = re.match(r'^\s*# Subtest: (\S+)', line)
            if s and line.startswith(' ' * 8) and not line.startswith(' ' * 9):
                pcase, pcount = s.group(1), 0
            elif s and line.startswith('    ') and not line.startswith(' ' * 5):
                suite = s.group(1)
            continue
        indent, verdict, _, name, directive = m.groups()
        if len(indent) == 8 and pcase:
            name = '%s: %s' % (pcase, name)
            pcount += 1
        elif len(indent) == 4 and pcase and name == pcase:
            pcase = None
            if pcount:
                continue
        elif len(indent) != 4:
            continue
        full = 'kunit: %s.%s' % (suite or '?', name)
        if directive and directive.upper() == 'SKIP':
            skipped.append(full)
        elif verdict == 'ok':
            passed.append(full)
        else:
            failed.append(full)

    # Guest programs.
    prog, seen, done, diag = None, 0, False, []
    for line in tests:
        b = re.match(r'^HMM-HARNESS: begin (\S+)', line)
        e = re.match(r'^HMM-HARNESS: end (\S+) rc=(\d+)', line)
        if b:
            prog, seen, diag = b.group(1), 0, []
            continue
        if e:
            rc = int(e.group(2))
            if rc and not any(f.startswith(prog + ':') for f in failed):
                failed.append('%s: exited with status %d%s' %
                              (prog, rc, '' if seen else ' before reporting any test'))
            elif not rc and not seen:
                passed.append(prog)
            prog = None
            continue
        if line.startswith('HMM-HARNESS: done'):
            done = True
        k = re.match(r'^HMM-HARNESS: kmemleak (\d+)', line)
        if k and int(k.group(1)):
            failed.append('kmemleak: %s unreferenced object(s) after the tests:%s'
                          % (k.group(1), kmemleak_head(console)))
        m = TAP.match(line)
        if prog and not m and line.startswith('#') and \
                not line.startswith('#  RUN') and \
                not re.match(r'^#\s+(OK|FAIL|SKIP)\s', line):
            diag = (diag + [line])[-DIAG_LINES:]
        if not prog or not m or m.group(1):
            continue
        seen += 1
        verdict, name, directive = m.group(2), m.group(4), m.group(5)
        full = '%s: %s' % (prog, name)
        if directive and directive.upper() == 'SKIP':
            skipped.append(full)
        elif verdict == 'ok':
            passed.append(full)
        else:
            failed.append(full + ''.join('\n    ' + d for d in diag))
        diag = []
    if prog:
        failed.append('%s: never finished (the guest died or hung in it)' % prog)

    # Kernel splats: name the first line of each.
    for i, line in enumerate(console):
        if line.startswith(KCSAN):
            continue
        if SPLAT.search(line) and not line.startswith(' '):
            ctx = ''
            for nxt in console[i:i + 40]:
                c = re.search(r'\b(Comm|comm):\s*(\S+)', nxt) or \
                    re.search(r'\bcomm "([^"]+)"', nxt)
                if c:
                    ctx = ' [in %s]' % c.groups()[-1]
                    break
            failed.append('kernel: %s%s (console.log line %d)' % (line.strip()[:120], ctx, i + 1))

    kcsan_reports(console, read_scope(resdir + '/scope.txt'), failed, notes)

    if not done:
        failed.append('run: the guest never reached the end of the tests '
                      '(timeout, hang or panic); console tail:\n    ' +
                      '\n    '.join(console[-15:]))


def read_xfail(path):
    """(pattern, certain) for each entry of an expected-failure list."""
    entries = []
    for line in read(path):
        line = line.split('#', 1)[0].strip()
        if line:
            entries.append((line.lstrip('?').strip(), not line.startswith('?')))
    return entries


def apply_xfail(entries, passed, failed, skipped, xfailed):
    """Move the expected failures and skips to passed, report stale entries."""
    hit = set()
    for results in (failed, skipped):
        for f in list(results):
            first = f.split('\n', 1)[0]
            for pattern, _ in entries:
                if fnmatch.fnmatchcase(first, pattern):
                    hit.add(pattern)
                    results.remove(f)
                    passed.append(first)
                    xfailed.append(first)
                    break
    for pattern, certain in entries:
        if certain and pattern not in hit:
            failed.append('stock-xfail: "%s" is listed as failing on the '
                          'unmodified kernel but did not fail' % pattern)


def main(resdir, checks=None, xfail=None):
    passed, failed, skipped, notes, xfailed = [], [], [], [], []
    judge(resdir, passed, failed, skipped, notes)
    for boot in ('pressure', 'race'):
        sub = resdir + '/' + boot
        if os.path.isdir(sub):
            lists = [], [], [], []
            judge(sub, *lists)
            for mine, theirs in zip((passed, failed, skipped, notes), lists):
                mine.extend(boot + '/' + t for t in theirs)

    # make check's verdicts, when make test ran it.
    for line in read(checks) if checks else []:
        m = re.match(r'^(ok|not ok) (.*)$', line)
        if m:
            (passed if m.group(1) == 'ok' else failed).append('check: ' + m.group(2))

    if xfail:
        apply_xfail(read_xfail(xfail), passed, failed, skipped, xfailed)
    for x in xfailed:
        print('XFAIL ' + x)
    for f in failed:
        print('FAIL  ' + f)
    for s in skipped:
        print('SKIP  ' + s)
    for n in notes:
        print('NOTE  ' + n)
    print('%d passed, %d failed, %d skipped' % (len(passed), len(failed), len(skipped)))
    return 1 if failed or skipped else 0


if __name__ == '__main__':
    args = sys.argv[1:]
    xf = None
    if '--xfail' in args:
        i = args.index('--xfail')
        xf = args[i + 1]
        del args[i:i + 2]
    sys.exit(main(args[0], args[1] if len(args) > 1 else None, xf))
