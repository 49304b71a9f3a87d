#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make series: turn linux/ and patches/ into a git format-patch series
against the pristine base (series/series.conf says which change goes in
which commit), then prove it:
  1. the patches apply with `git am` to a fresh checkout of the base;
  2. every patch in order builds (the objects it touches; the whole
     kernel after the last one);
  3. the result equals the tree that make test tests (.cache/tree).

The commits, the patches' From: and Signed-off-by:, and the cover letter's
From: and Signed-off-by: carry the identity of whoever runs it: git config
user.name and user.email (GIT_AUTHOR_NAME / GIT_AUTHOR_EMAIL override them,
as they do for git commit). With either unset it refuses, unless given
--allow-placeholder-identity (make check, which only checkpatches the
result): then the patches carry PLACEHOLDER and a note says so.

Usage: series.py TOP CACHE BASE TREE OUTDIR BUILDDIR [--no-build]
                 [--allow-placeholder-identity]
       series.py --identity TOP   (print the identity, or refuse)
"""
import os
import re
import shutil
import subprocess
import sys

# Only for patches nobody sends: make check's checkpatch input.
PLACEHOLDER = ('HMM placeholder identity', 'unset-git-identity@example.invalid')
KUNIT_BLOCK = re.compile(r'\n#ifdef CONFIG_\w+_KUNIT_TEST\n#include "tests/[\w-]+-kunit\.h"\n#endif[^\n]*\n')


def sh(cmd, cwd=None, check=True, quiet=False):
    r = subprocess.run(cmd, cwd=cwd, shell=isinstance(cmd, str), text=True,
                       capture_output=True)
    if check and r.returncode:
        sys.stderr.write('$ %s\n%s%s' % (cmd, r.stdout[-3000:], r.stderr[-3000:]))
        sys.exit('series: command failed')
    if not quiet and r.stdout:
        print(r.stdout, end='')
    return r


def identity(top, allow_placeholder=False):
    """(name, email) of whoever runs this, from git config (or the
    GIT_AUTHOR_* variables); exits with how to set it when unset."""
    def conf(key, env):
        if os.environ.get(env, '').strip():
            return os.environ[env].strip()
        r = subprocess.run(['git', '-C', top, 'config', key], text=True,
                           capture_output=True)
        return r.stdout.strip()
    name = conf('user.name', 'GIT_AUTHOR_NAME')
    email = conf('user.email', 'GIT_AUTHOR_EMAIL')
    if name and email:
        return name, email
    missing = ' and '.join(k for k, v in (('user.name', name), ('user.email', email)) if not v)
    if allow_placeholder:
        sys.stderr.write('series: note: git config %s not set; these patches carry the '
                         'placeholder identity "%s <%s>" and are for checkpatch only, '
                         'not for sending (make series refuses)\n' % ((missing,) + PLACEHOLDER))
        return PLACEHOLDER
    sys.exit('series: error: git config %s not set: the patches are signed off by '
             'whoever makes them. Set your identity with\n'
             '    git config --global user.name "Your Name"\n'
             '    git config --global user.email "you@example.org"\n'
             '(or without --global, for this repository only), and run it again.'
             % missing)


# The identity git uses for every commit and for format-patch (the cover
# letter's From: is the committer's); set by main().
GIT_ENV = dict(os.environ)


def git(repo, *args, **kw):
    r = subprocess.run(['git', '-C', repo] + list(args), text=True, capture_output=True,
                       env=GIT_ENV, input=kw.pop('input', None))
    if kw.get('check', True) and r.returncode:
        sys.stderr.write('$ git -C %s %s\n%s%s' % (repo, ' '.join(args), r.stdout[-3000:], r.stderr[-3000:]))
        sys.exit('series: command failed')
    if not kw.get('quiet') and r.stdout:
        print(r.stdout, end='')
    return r


def parse_conf(path):
    commits, cur = [], None
    for line in open(path):
        line = line.rstrip('\n')
        if not line.strip() or line.startswith('#'):
            if cur and not line.strip():
                commits.append(cur)
                cur = None
            continue
        key, _, val = line.partition(':')
        cur = cur or {}
        cur[key.strip()] = val.strip()
    if cur:
        commits.append(cur)
    return commits


def base_repo(cache, base, version):
    """A git repository of the pristine base, made once (takes a minute)."""
    repo = os.path.join(cache, 'series-git')
    if not os.path.exists(os.path.join(repo, '.hmm-ok')):
        shutil.rmtree(repo, ignore_errors=True)
        shutil.copytree(base, repo, symlinks=True)
        os.unlink(os.path.join(repo, '.hmm-base-ok'))
        git(repo, 'init', '-q', '-b', 'base')
        git(repo, 'add', '-A', '-f')
        git(repo, 'commit', '-q', '-m', 'Linux %s (Debian linux-source-6.12)' % version)
        git(repo, 'tag', 'v' + version)
        open(os.path.join(repo, '.hmm-ok'), 'w').close()
        with open(os.path.join(repo, '.git', 'info', 'exclude'), 'a') as f:
            f.write('.hmm-ok\n')
    return repo


def main():
    if sys.argv[1:2] == ['--identity']:
        print('series: patches signed off by %s <%s>' % identity(sys.argv[2]))
        return
    top, cache, base, tree, outdir, build = sys.argv[1:7]
    do_build = '--no-build' not in sys.argv
    name, email = identity(top, '--allow-placeholder-identity' in sys.argv)
    author = '%s <%s>' % (name, email)
    for who in ('AUTHOR', 'COMMITTER'):
        GIT_ENV['GIT_%s_NAME' % who] = name
        GIT_ENV['GIT_%s_EMAIL' % who] = email
    version = sh("sed -n 's/^VERSION = //p;s/^PATCHLEVEL = //p;s/^SUBLEVEL = //p' %s/Makefile | paste -sd." % base,
                 quiet=True).stdout.strip()
    sdir = os.path.join(top, 'series')
    commits = parse_conf(os.path.join(sdir, 'series.conf'))
    repo = base_repo(cache, base, version)
    tag = 'v' + version

    git(repo, 'checkout', '-q', '-f', '-B', 'hmm', tag)
    git(repo, 'clean', '-q', '-fdx', '-e', '.hmm-ok')
    kunit_later = any(c.get('kunit') for c in commits)
    for c in commits:
        touched, body = [], ''
        for name in c.get('patch', '').split():
            p = os.path.join(top, 'patches', name)
            git(repo, 'apply', '--index', p)
            touched += re.findall(r'^\+\+\+ b/(\S+)', open(p).read(), re.M)
            if not body:
                body = open(p).read().split('\n\n', 1)[1].split('\n---\n', 1)[0]
                body = re.sub(r'\nSigned-off-by:.*', '', body).strip()
        if 'message' in c:
            body = open(os.path.join(sdir, c['message'])).read().strip()
        for f in c.get('files', '').split():
            src = os.path.join(top, 'linux', f)
            if not os.path.exists(src):
                continue
            dst = os.path.join(repo, f)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(src, dst)
            touched.append(f)
            git(repo, 'add', '-f', f)
        if c.get('kunit'):
            # Now put back the include blocks the core commits left out.
            mmdir = os.path.join(top, 'linux', 'mm')
            for f in sorted(os.listdir(mmdir) if os.path.isdir(mmdir) else []):
                src = os.path.join(top, 'linux', 'mm', f)
                if f.endswith('.c') and KUNIT_BLOCK.search(open(src).read()):
                    shutil.copy(src, os.path.join(repo, 'mm', f))
                    git(repo, 'add', '-f', 'mm/' + f)
                    touched.append('mm/' + f)
        if kunit_later and not c.get('kunit'):
            for f in touched:
                p = os.path.join(repo, f)
                if f.endswith('.c') and os.path.exists(p):
                    text = open(p).read()
                    stripped = KUNIT_BLOCK.sub('\n', text)
                    if stripped != text:
                        open(p, 'w').write(stripped)
                        git(repo, 'add', '-f', f)
        if not git(repo, 'diff', '--cached', '--name-only', quiet=True).stdout.strip():
            print('series: "%s" has nothing yet, left out' % c['subject'])
            continue
        msg = '%s\n\n%s\n\nSigned-off-by: %s\n' % (c['subject'], body, author)
        git(repo, 'commit', '-q', '-F', '-', input=msg)

    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    git(repo, 'format-patch', '-q', '--cover-letter', '--thread', '-o', outdir, tag + '..hmm')
    cover = sorted(os.listdir(outdir))[0]
    cpath = os.path.join(outdir, cover)
    text = open(cpath).read()
    intro = open(os.path.join(sdir, 'cover.txt')).read().strip() % {'version': version}
    subj = intro.split('\n', 1)[0]
    blurb = '%s\n\nSigned-off-by: %s' % (intro.split('\n', 1)[1].strip(), author)
    text = text.replace('*** SUBJECT HERE ***', subj).replace('*** BLURB HERE ***', blurb)
    open(cpath, 'w').write(text)
    patches = sorted(p for p in os.listdir(outdir) if p != cover)
    print('series: %d patches + cover letter in %s, from and signed off by %s'
          % (len(patches), os.path.relpath(outdir, top), author))

    # Proof 1: git am on a fresh checkout of the base.
    check = os.path.join(cache, 'series-am')
    shutil.rmtree(check, ignore_errors=True)
    git(repo, 'worktree', 'prune')
    git(repo, 'worktree', 'add', '-q', '-f', '--detach', check, tag)
    git(check, 'am', '-q', *[os.path.join(outdir, p) for p in patches])
    print('series: applies with git am on %s' % tag)

    # Proof 3: the result is the tree make test tests.
    changed = git(check, 'diff', '--name-only', tag, 'HEAD', quiet=True).stdout.split()
    manifest = open(os.path.join(tree, '.hmm-manifest')).read().split()
    bad = [f for f in set(changed) | set(manifest)
           if sh(['cmp', '-s', os.path.join(check, f), os.path.join(tree, f)], check=False).returncode]
    if bad:
        sys.exit('series: differs from the tested tree in: ' + ' '.join(sorted(bad)))
    print('series: result equals the tested tree (%d files changed from the base)' % len(changed))

    # Proof 2: each patch builds.
    if do_build:
        revs = git(check, 'rev-list', '--reverse', tag + '..HEAD', quiet=True).stdout.split()
        for i, rev in enumerate(revs, 1):
            git(check, 'checkout', '-q', rev)
            files = git(check, 'diff', '--name-only', rev + '^', rev, quiet=True).stdout.split()
            objs = [f[:-2] + '.o' for f in files if f.endswith('.c') and not f.startswith('tools/')]
            for f in files:
                # A header builds the objects that include it.
                if f.startswith('mm/tests/') and f.endswith('-kunit.h'):
                    objs.append('mm/' + os.path.basename(f)[:-len('-kunit.h')] + '.o')
                elif f.startswith('lib/') and f.endswith('.h'):
                    objs.append('lib/test_hmm.o')
                elif f.startswith('include/linux/'):
                    objs += ['lib/test_hmm.o'] + ['mm/%s.o' % m for m in
                                                  ('memremap', 'hmm', 'migrate_device')
                                                  if os.path.exists(os.path.join(check, 'mm', m + '.c'))]
            last = i == len(revs)
            objs = [o for o in set(objs) if configured(check, build, o)]
            targets = (['bzImage', 'modules'] if last else sorted(objs)) or []
            if not targets:
                print('series: patch %d builds (nothing to compile)' % i)
                continue
            r = subprocess.run(['make', '-C', check, 'O=' + build, 'ARCH=x86_64',
                                'CC=ccache gcc', '-j%d' % os.cpu_count(), '-s'] + targets,
                               capture_output=True, text=True)
            if r.returncode:
                sys.stderr.write(r.stdout[-2000:] + r.stderr[-4000:])
                sys.exit('series: patch %d does not build' % i)
            print('series: patch %d builds (%s)' % (i, 'whole kernel' if last else ' '.join(targets)))
    git(repo, 'worktree', 'remove', '--force', check, check=False)


def configured(src, build, obj):
    """Does the build's .config compile @obj?  An object its directory's
    Makefile lists only under config symbols that are off (mm/mempolicy.o
    without NUMA) cannot be built alone; anything else is tried."""
    d, name = os.path.split(obj)
    try:
        with open(os.path.join(src, d, 'Makefile')) as f:
            mk = f.read().replace('\\\n', ' ')
        with open(os.path.join(build, '.config')) as f:
            cfg = f.read()
    except OSError:
        return True
    listed = False
    for m in re.finditer(r'^obj-(?:\$\((CONFIG_\w+)\)|y)\s*[+:]?=(.*)$', mk, re.M):
        if name not in m.group(2).split():
            continue
        listed = True
        if m.group(1) is None or re.search(r'^%s=[ym]$' % m.group(1), cfg, re.M):
            return True
    return not listed


if __name__ == '__main__':
    main()
