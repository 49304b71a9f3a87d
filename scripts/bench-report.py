#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summarise a make bench run: median and spread per cell and kernel, the
ratio ours/stock and the ratio to memcpy; write bench.csv and bench.png
(gnuplot) next to the raw data and print the table.

raw.txt lines: KIND REP BENCH WORKLOAD MEM BYTES MICROSECONDS
"""
import collections
import os
import statistics
import subprocess
import sys

ORDER = ['migrate-sys', 'migrate-fault', 'read-pop', 'read-unpop', 'snapshot', 'memcpy']


def main(res):
    cells = collections.defaultdict(list)
    for line in open(os.path.join(res, 'raw.txt')):
        kind, _, _, wl, mem, size, us = line.split()
        cells[(wl, mem, int(size), kind)].append(float(us))
    keys = sorted({k[:3] for k in cells}, key=lambda k: (k[1], k[2], ORDER.index(k[0])))

    def med(k):
        v = cells.get(k)
        return statistics.median(v) if v else float('nan')

    def spread(k):
        v = cells.get(k, [])
        m = med(k)
        return 100.0 * (max(v) - min(v)) / m if len(v) > 1 and m else 0.0

    rows = []
    for wl, mem, size in keys:
        s, o = med((wl, mem, size, 'stock')), med((wl, mem, size, 'ours'))
        mc = med(('memcpy', mem, size, 'ours'))
        mib = size / (1 << 20)
        rows.append(dict(wl=wl, mem=mem, mib=mib, stock_us=s, ours_us=o,
                         stock_mibs=mib / (s / 1e6), ours_mibs=mib / (o / 1e6),
                         stock_spread=spread((wl, mem, size, 'stock')),
                         ours_spread=spread((wl, mem, size, 'ours')),
                         ratio=s / o, vs_memcpy=mc / o,
                         n=min(len(cells.get((wl, mem, size, 'stock'), [])),
                               len(cells.get((wl, mem, size, 'ours'), [])))))

    with open(os.path.join(res, 'bench.csv'), 'w') as f:
        f.write('workload,memory,MiB,stock_us,ours_us,stock_MiBps,ours_MiBps,'
                'stock_spread_pct,ours_spread_pct,speed_ours_over_stock,speed_vs_memcpy,reps\n')
        for r in rows:
            f.write('%(wl)s,%(mem)s,%(mib)g,%(stock_us).1f,%(ours_us).1f,%(stock_mibs).1f,'
                    '%(ours_mibs).1f,%(stock_spread).1f,%(ours_spread).1f,%(ratio).3f,'
                    '%(vs_memcpy).4f,%(n)d\n' % r)

    # Chart: speed ours/stock per cell (1.0 = same as stock).
    dat = os.path.join(res, 'bench.dat')
    with open(dat, 'w') as f:
        for r in rows:
            if r['wl'] != 'memcpy':
                f.write('"%s %s %gM" %.3f %.1f %.1f\n' % (r['wl'], r['mem'], r['mib'], r['ratio'],
                                                       r['stock_mibs'], r['ours_mibs']))
    gp = '''set terminal png size 1400,600
set output "%s"
set title "HMM series vs stock 6.12 (median MiB/s, higher is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -45 font ",9"
set logscale y
set ylabel "MiB/s"
set key top left
plot "%s" using 3:xtic(1) title "stock", "" using 4 title "ours"
''' % (os.path.join(res, 'bench.png'), dat)
    try:
        subprocess.run(['gnuplot'], input=gp, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print('gnuplot failed: %s' % e)

    hdr = '%-14s %-4s %6s %12s %12s %10s %10s %8s %8s %7s %9s' % (
        'workload', 'mem', 'MiB', 'stock us', 'ours us', 'stock MiB/s', 'ours MiB/s',
        'st.spr%', 'our.spr%', 'ours/st', 'vs memcpy')
    print(hdr)
    for r in rows:
        print('%-14s %-4s %6g %12.0f %12.0f %10.0f %10.0f %8.1f %8.1f %7.2f %9.3f' % (
            r['wl'], r['mem'], r['mib'], r['stock_us'], r['ours_us'], r['stock_mibs'],
            r['ours_mibs'], r['stock_spread'], r['ours_spread'], r['ratio'], r['vs_memcpy']))
    print('ours/st: speed of ours relative to stock (>1 faster); spread: (max-min)/median over %d reps'
          % min(r['n'] for r in rows))
    print('csv: %s/bench.csv  chart: %s/bench.png' % (res, res))


if __name__ == '__main__':
    main(sys.argv[1])
