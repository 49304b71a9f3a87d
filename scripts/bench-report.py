#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summarise a make bench run in two tables:

primary    raw-icount.txt: boots under QEMU icount, where the guest clock
           counts guest instructions (1 ns each), so one boot per kernel
           gives a repeatable figure ("guest-instruction time")
secondary  raw.txt: boots under plain TCG, wall-clock, medians over the
           repetitions with their spread

Each table gives per cell and kernel the time, the rate, the ratio
ours/stock and the ratio to memcpy. bench.csv and bench.png (gnuplot) are
written from the primary figure, bench-wallclock.csv from the secondary;
a run with only one of the two raw files (e.g. an older run with raw.txt
alone) uses that one for bench.csv and bench.png.

raw lines: KIND REP BENCH WORKLOAD MEM BYTES MICROSECONDS

A kernel that cannot migrate a kind of memory has no cell for it (the
bench printed BENCH-NA instead): stock 6.12 moves no 64 KiB folio, so a
64k migration row is compared with stock moving the same bytes as 4 KiB
pages, and marked so (ours/st followed by '*').
"""
import collections
import os
import statistics
import subprocess
import sys

ORDER = ['migrate-sys', 'migrate-fault', 'read-pop', 'read-unpop', 'snapshot', 'memcpy',
         'fault-latency']


def order(wl):
    return ORDER.index(wl) if wl in ORDER else len(ORDER)


def load(path):
    """{(workload, mem, bytes, kind): [us, ...]} from a raw file."""
    cells = collections.defaultdict(list)
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            kind, _, _, wl, mem, size, us = line.split()
            cells[(wl, mem, int(size), kind)].append(float(us))
    return cells


def summarise(cells):
    keys = sorted({k[:3] for k in cells}, key=lambda k: (k[1], k[2], order(k[0]), k[0]))

    def med(k):
        v = cells.get(k)
        return statistics.median(v) if v else float('nan')

    def spread(k):
        v = cells.get(k, [])
        m = med(k)
        return 100.0 * (max(v) - min(v)) / m if len(v) > 1 and m else 0.0

    def rate(mib, us):
        return mib / (us / 1e6) if us else float('nan')

    def div(a, b):
        return a / b if b else float('nan')

    rows = []
    for wl, mem, size in keys:
        s, o = med((wl, mem, size, 'stock')), med((wl, mem, size, 'ours'))
        base = mem
        if s != s and mem == '64k':
            # stock cannot move the folios: its 4 KiB row is the baseline
            base = '4k'
            s = med((wl, base, size, 'stock'))
        mc = med(('memcpy', mem, size, 'ours'))
        mib = size / (1 << 20)
        rows.append(dict(wl=wl, mem=mem, mib=mib, stock_us=s, ours_us=o,
                         stock_mibs=rate(mib, s), ours_mibs=rate(mib, o),
                         stock_spread=spread((wl, mem, size, 'stock')),
                         ours_spread=spread((wl, mem, size, 'ours')),
                         ratio=div(s, o), vs_memcpy=div(mc, o), base=base,
                         n=min(len(cells.get((wl, base, size, 'stock'), [])),
                               len(cells.get((wl, mem, size, 'ours'), [])))))
    return rows


def write_csv(path, rows):
    with open(path, 'w') as f:
        f.write('workload,memory,MiB,stock_us,ours_us,stock_MiBps,ours_MiBps,'
                'stock_spread_pct,ours_spread_pct,speed_ours_over_stock,speed_vs_memcpy,reps,'
                'stock_memory\n')
        for r in rows:
            f.write('%(wl)s,%(mem)s,%(mib)g,%(stock_us).1f,%(ours_us).1f,%(stock_mibs).1f,'
                    '%(ours_mibs).1f,%(stock_spread).2f,%(ours_spread).2f,%(ratio).3f,'
                    '%(vs_memcpy).4f,%(n)d,%(base)s\n' % r)


def chart(res, rows, what):
    """bench.png: MiB/s per cell and kernel."""
    dat = os.path.join(res, 'bench.dat')
    with open(dat, 'w') as f:
        for r in rows:
            if r['wl'] != 'memcpy':
                f.write('"%s %s %gM" %.3f %.1f %.1f\n' % (r['wl'], r['mem'], r['mib'], r['ratio'],
                                                       r['stock_mibs'], r['ours_mibs']))
    gp = '''set terminal png size 1400,600
set output "%s"
set title "HMM series vs stock 6.12, %s (MiB/s, higher is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -45 font ",9"
set logscale y
set ylabel "MiB/s"
set key top left
plot "%s" using 3:xtic(1) title "stock", "" using 4 title "ours"
''' % (os.path.join(res, 'bench.png'), what, dat)
    try:
        subprocess.run(['gnuplot'], input=gp, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print('gnuplot failed: %s' % e)


def table(title, rows, with_spread, spread_digits=1):
    print(title)
    cols = '%-14s %-4s %6s %12s %12s %11s %11s'
    hdr = ['workload', 'mem', 'MiB', 'stock us', 'ours us', 'stock MiB/s', 'ours MiB/s']
    if with_spread:
        cols += ' %8s %8s'
        hdr += ['st.spr%', 'our.spr%']
    cols += ' %7s %9s'
    hdr += ['ours/st', 'vs memcpy']
    print(cols % tuple(hdr))
    for r in rows:
        line = '%-14s %-4s %6g %12.0f %12.0f %11.1f %11.1f' % (
            r['wl'], r['mem'], r['mib'], r['stock_us'], r['ours_us'], r['stock_mibs'],
            r['ours_mibs'])
        if with_spread:
            line += ' %8.*f %8.*f' % (spread_digits, r['stock_spread'],
                                      spread_digits, r['ours_spread'])
        line += ' %6.2f%s %9.3f' % (r['ratio'], '*' if r['base'] != r['mem'] else ' ',
                                    r['vs_memcpy'])
        print(line)


def main(res):
    icount_path = os.path.join(res, 'raw-icount.txt')
    wall_path = os.path.join(res, 'raw.txt')
    icount = summarise(load(icount_path)) if os.path.exists(icount_path) else []
    wall = summarise(load(wall_path)) if os.path.exists(wall_path) else []
    if not icount and not wall:
        sys.exit('%s: neither raw-icount.txt nor raw.txt has any data' % res)

    if icount:
        n = min(r['n'] for r in icount)
        multi = max(r['n'] for r in icount) > 1
        table('Primary: guest-instruction time (QEMU icount, 1 guest instruction = 1 ns '
              'of guest clock), %d boot%s per kernel' % (n, 's' if n > 1 else ''),
              icount, multi, 2)
        if multi:
            print('spread: (max-min)/median between the icount boots of one kernel')
        print()
    if wall:
        table('Secondary: wall-clock (TCG, medians over %d boots per kernel; noisy)'
              % min(r['n'] for r in wall), wall, True)
        print('spread: (max-min)/median over the boots of one kernel')
        print()
    print('ours/st: speed of ours relative to stock (>1 faster); '
          'vs memcpy: speed relative to memcpy of the same size in the same guest')
    if any(r['base'] != r['mem'] for r in (icount or wall)):
        print('*: stock cannot migrate this memory (6.12 leaves a large folio mapped by '
              'ptes where it is); compared with stock moving the same bytes as 4 KiB pages')

    primary = icount or wall
    write_csv(os.path.join(res, 'bench.csv'), primary)
    if icount and wall:
        write_csv(os.path.join(res, 'bench-wallclock.csv'), wall)
    chart(res, primary, 'guest-instruction time (icount)' if icount else 'wall-clock median')
    print('csv: %s/bench.csv (%s)%s  chart: %s/bench.png' % (
        res, 'icount' if icount else 'wall-clock',
        '  %s/bench-wallclock.csv' % res if icount and wall else '', res))


if __name__ == '__main__':
    main(sys.argv[1])
