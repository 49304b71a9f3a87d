// SPDX-License-Identifier: GPL-2.0
/*
 * hmm-stress: several processes with two threads each hammer the HMM test
 * devices (/dev/hmm_dmirror0..3, two device-private and two
 * device-coherent units) with random operations on buffers whose contents
 * they track page by page, and check after every step that could lose data
 * that the data is what it should be.
 *
 * Usage: hmm-stress [-t SECONDS] [-w WORKERS] [-s SEED] [-p PERCENT]
 *   -t  how long to run (default 25 s, the make test run); the run goes
 *       on, a second at a time and EXTEND_SECS at most, until every
 *       operation kind has been done at least once, so that a slow
 *       machine (a loaded host, the pressure machine) still covers them
 *       all.
 *   -w  worker processes (default 4, worker i prefers device i % 4)
 *   -s  seed of the random operation streams (default 1; printed)
 *   -p  memory pressure: a hog process keeps writing over PERCENT % of
 *       the memory available at the start, so that reclaim (to swap)
 *       runs all the time and every migration back to system memory
 *       competes with it. The hog is the OOM killer's choice
 *       (oom_score_adj 1000, the others -1000) and is restarted when
 *       killed. Swap in use must grow during the run.
 *
 * A buffer is small pages, one THP, or 64 KiB folios (the run sets
 * hugepages-64kB to "madvise" when the kernel has it, and puts it back at
 * exit), so that large device folios of both sizes are in the mix.
 *
 * Each page of a buffer holds a pattern derived from a 32-bit "seed" that
 * the owning thread records; seed 0 means the page must read as zeroes
 * (fresh mapping, MADV_DONTNEED, the grown part of an mremap()). A check
 * regenerates the pattern and compares every word, either through the CPU
 * (which faults device pages back) or through a device read.
 *
 * Operations and the errors each accepts (anything else is counted as an
 * unexpected error and fails the run):
 *   to-dev     MIGRATE_TO_DEV, data read back by the device checked.
 *              EBUSY: the read-back lost the race with invalidations;
 *              ENOENT: some page is not in the device's memory (another
 *              thread moved it to the other device, it is in swap or
 *              pinned).
 *   to-sys     MIGRATE_TO_SYS, then a check. No error accepted.
 *   cpu        CPU reads (faulting pages back) or writes of a range.
 *   dev-read   device READ through the mirror. EBUSY as above.
 *   dev-write  device WRITE through the mirror. EBUSY as above (the
 *              range then holds old or new data page by page, both
 *              accepted and tracked); EPERM exactly when the buffer is
 *              read-only.
 *   snapshot   SNAPSHOT: no error byte, no write bit on a read-only
 *              buffer. EBUSY as above.
 *   exclusive  EXCLUSIVE, data checked, then CPU writes must end the
 *              exclusive access (CHECK_EXCLUSIVE returns 0 there).
 *              EBUSY: some page could not be taken (e.g. it sits in
 *              device-private memory); EPERM on a read-only buffer.
 *   remap      munmap() + mmap() of a new buffer.
 *   fork       fork(); the child checks, writes and checks its copy
 *              (sometimes migrating it through its own device file:
 *              EBUSY and ENOENT as for to-dev) while the parent writes
 *              its own; both sides are checked. fork() itself may not
 *              fail (6.12's fork() failed with ENOMEM when a device-exclusive
 *              page was locked by somebody else, e.g. the other thread's
 *              EXCLUSIVE or reclaim: the series makes it wait instead).
 *   mprotect   toggle read-only / read-write.
 *   mremap     grow or shrink, sometimes forced to move.
 *   dontneed   MADV_DONTNEED of a range: it must read as zeroes.
 *   release    HMM_DMIRROR_RELEASE: evict a whole device's memory.
 *   exit       a worker process ends (half of the time abruptly, with
 *              its threads in the middle of operations) and is respawned.
 *
 * At the end: per operation kind the count done, the data mismatches and
 * the unexpected errors (TAP, one test each), and per device the driver's
 * pages_in_use (HMM_DMIRROR_STATS), which must be back to its value before
 * the run once every process has exited, and the peak of swap in use.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "hmm-util.h"

#define NDEV		4
#define SMALLP		128		/* largest small-page buffer, in pages */
#define MAXP		512		/* a THP buffer: one 2 MiB huge page */
#define UNKNOWN		0xffffffffu	/* page content no longer tracked */
#define MAX_MSGS	40		/* diagnostics printed at most */
#define HANG_SECS	180		/* grace after the deadline */
#define EXTEND_SECS	120		/* most the run is extended for coverage */

enum op {
	OP_TO_DEV, OP_TO_SYS, OP_CPU, OP_DEV_READ, OP_DEV_WRITE, OP_SNAPSHOT,
	OP_EXCL, OP_REMAP, OP_FORK, OP_MPROTECT, OP_MREMAP, OP_DONTNEED,
	OP_RELEASE, OP_EXIT, NR_OPS
};

static const char *const op_name[NR_OPS] = {
	"to-dev", "to-sys", "cpu", "dev-read", "dev-write", "snapshot",
	"exclusive", "remap", "fork", "mprotect", "mremap", "dontneed",
	"release", "exit",
};

/* Relative frequency of each operation a thread picks (exit is apart). */
static const unsigned int op_weight[NR_OPS] = {
	[OP_TO_DEV] = 14, [OP_TO_SYS] = 8, [OP_CPU] = 12, [OP_DEV_READ] = 10,
	[OP_DEV_WRITE] = 10, [OP_SNAPSHOT] = 6, [OP_EXCL] = 6, [OP_REMAP] = 4,
	[OP_FORK] = 3, [OP_MPROTECT] = 4, [OP_MREMAP] = 4, [OP_DONTNEED] = 5,
	[OP_RELEASE] = 1,
};

/* Counters shared by every process of the run (MAP_SHARED). */
struct shared {
	unsigned long done[NR_OPS];
	unsigned long mismatch[NR_OPS];
	unsigned long unexpected[NR_OPS];
	unsigned long accepted[NR_OPS];		/* EBUSY */
	unsigned long ro_denied[NR_OPS];	/* EPERM, read-only buffer */
	unsigned long held_on_dev, moved_to_sys, evicted;
	unsigned long pages_checked;
	unsigned long msgs;
	unsigned long spawned, crashed;
	unsigned long hog_runs, hog_kills;
	int hog_ready;		/* the hog has written all of its memory */
	struct timespec deadline;
	int stop;
};

static struct shared *sh;
static long ps;
static size_t wpp;			/* 32-bit words per page */

#define ADD(field, n)	__atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)

/* One diagnostic line, written in one go (safe in a forked child). */
static void msg(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	if (ADD(sh->msgs, 1) >= MAX_MSGS)
		return;
	n = snprintf(line, sizeof(line), "# [%d] ", getpid());
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(1, line, n) < 0)
		return;
}

/* Is @now at or after @t? */
static int past_at(const struct timespec *now, const struct timespec *t)
{
	return now->tv_sec > t->tv_sec ||
	       (now->tv_sec == t->tv_sec && now->tv_nsec >= t->tv_nsec);
}

static int past(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return past_at(&now, t);
}

/* Has every operation kind been done at least once? */
static int every_op_done(void)
{
	int i;

	for (i = 0; i < NR_OPS; i++)
		if (!__atomic_load_n(&sh->done[i], __ATOMIC_RELAXED))
			return 0;
	return 1;
}

static uint64_t rnd(uint64_t *s)
{
	return xorshift64s(s);
}

/* ------------------------------------------------------------------ */
/* Patterns                                                            */
/* ------------------------------------------------------------------ */

static uint32_t pat(uint32_t seed, size_t i)
{
	return seed ? (seed * 0x9e3779b1u) ^ ((uint32_t)i * 0x85ebca6bu) ^
		      (seed >> 5) : 0;
}

static void fill_page(uint32_t *p, uint32_t seed)
{
	size_t i;

	for (i = 0; i < wpp; i++)
		p[i] = pat(seed, i);
}

static int page_is(const uint32_t *p, uint32_t seed)
{
	size_t i;

	if (seed == UNKNOWN)
		return 1;
	for (i = 0; i < wpp; i++)
		if (p[i] != pat(seed, i))
			return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Per-thread state                                                    */
/* ------------------------------------------------------------------ */

struct thr {
	int w, id;
	pthread_t tid;
	uint64_t rng;
	uint32_t *p;		/* the buffer */
	size_t np;		/* its size in pages */
	int ro;			/* mapped read-only */
	uint32_t seed[MAXP];	/* expected content of each page */
	uint32_t ctr;
	uint32_t *scratch;	/* MAXP pages for device I/O */
	unsigned char snap[MAXP];
};

static int fds[NDEV];		/* this worker's device files */
static int home;		/* the device this worker prefers */
static volatile int proc_stop;

static uint32_t new_seed(struct thr *t)
{
	uint32_t s;

	do {
		s = ((uint32_t)t->w << 24) ^ ((uint32_t)t->id << 23) ^
		    (++t->ctr & 0x7fffff);
	} while (!s || s == UNKNOWN);
	return s;
}

static uint32_t *page(struct thr *t, size_t i)
{
	return t->p + i * wpp;
}

static void *addr_of(struct thr *t, size_t i)
{
	return page(t, i);
}

static void pick_range(struct thr *t, size_t *first, size_t *n)
{
	if (rnd(&t->rng) % 4 == 0) {
		*first = 0;
		*n = t->np;
		return;
	}
	*first = rnd(&t->rng) % t->np;
	*n = 1 + rnd(&t->rng) % (t->np - *first);
}

static int pick_fd(struct thr *t)
{
	return rnd(&t->rng) % 4 ? fds[home] : fds[rnd(&t->rng) % NDEV];
}

static void unexpected(struct thr *t, enum op op, const char *what, int err)
{
	ADD(sh->unexpected[op], 1);
	msg("w%d.%d %s: %s: %s", t->w, t->id, op_name[op], what,
	    err ? strerror(-err) : "succeeded, should have failed");
}

/* Compare @n pages of @data with the expected pages from @first. */
static int check_data(struct thr *t, enum op op, const char *how,
		      const uint32_t *data, size_t first, size_t n)
{
	size_t i, bad = 0;

	for (i = 0; i < n; i++) {
		const uint32_t *d = data + i * wpp;
		uint32_t s = t->seed[first + i];

		if (page_is(d, s))
			continue;
		if (!bad++)
			msg("w%d.%d %s: %s: page %zu/%zu seed %#x: word0 %#x want %#x%s",
			    t->w, t->id, op_name[op], how, first + i, t->np,
			    s, d[0], pat(s, 0), t->ro ? " (ro)" : "");
		/* Count a lost page once, then follow its new content. */
		t->seed[first + i] = UNKNOWN;
	}
	ADD(sh->pages_checked, n);
	if (bad)
		ADD(sh->mismatch[op], bad);
	return !bad;
}

static void check_cpu(struct thr *t, enum op op, size_t first, size_t n)
{
	check_data(t, op, "cpu check", page(t, first), first, n);
}

/*
 * Check a range through a device read half of the time (leaving pages
 * where they are) and through the CPU otherwise.
 */
static void check(struct thr *t, enum op op, size_t first, size_t n)
{
	struct hmm_dmirror_cmd c;
	int ret;

	if (rnd(&t->rng) % 2) {
		ret = dcmd(pick_fd(t), HMM_DMIRROR_READ, addr_of(t, first),
			   t->scratch, n, &c);
		if (!ret) {
			check_data(t, op, "device check", t->scratch, first, n);
			return;
		}
		if (ret != -EBUSY)
			unexpected(t, op, "device check", ret);
	}
	check_cpu(t, op, first, n);
}

static void cpu_write(struct thr *t, size_t first, size_t n)
{
	size_t i;

	for (i = first; i < first + n; i++) {
		t->seed[i] = new_seed(t);
		fill_page(page(t, i), t->seed[i]);
	}
}

/* After a failed device write each page holds the old or the new data. */
static void adopt_either(struct thr *t, enum op op, const uint32_t *newseed,
			 size_t first, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (page_is(page(t, first + i), newseed[i]))
			t->seed[first + i] = newseed[i];
	}
	check_cpu(t, op, first, n);
}

/* Kinds of buffer map_buf() makes. */
enum { BUF_SMALL, BUF_THP, BUF_MTHP, NR_BUF_KINDS };

/*
 * A new buffer of @np pages: small pages (BUF_SMALL); one naturally
 * aligned huge page that THP backs once written (BUF_THP), so that huge
 * device folios, and their splits by partial commands, munmap() and
 * mremap(), are in the mix; or (BUF_MTHP) @np pages from a 64 KiB
 * boundary, each whole 64 KiB of which is one 64 KiB folio once written
 * when the run could enable that size (mthp_enable()), small pages if not.
 */
static int map_buf(struct thr *t, size_t np, int kind)
{
	size_t hp = MAXP * ps, fs = 64 << 10;
	char *p, *a;

	if (kind == BUF_MTHP) {
		p = mmap(NULL, np * ps + fs, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return -errno;
		a = (char *)(((uintptr_t)p + fs - 1) & ~(uintptr_t)(fs - 1));
		if (a > p)
			munmap(p, a - p);
		munmap(a + np * ps, p + fs - a);
		madvise(a, np * ps, MADV_HUGEPAGE);
	} else if (kind == BUF_SMALL) {
		p = mmap(NULL, np * ps, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return -errno;
		madvise(p, np * ps, MADV_NOHUGEPAGE);
		a = p;
	} else {
		np = MAXP;
		p = mmap(NULL, 2 * hp, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return -errno;
		a = (char *)(((uintptr_t)p + hp - 1) & ~(uintptr_t)(hp - 1));
		if (a > p)
			munmap(p, a - p);
		munmap(a + hp, p + 2 * hp - (a + hp));
		madvise(a, hp, MADV_HUGEPAGE);
	}
	t->p = (uint32_t *)a;
	t->np = np;
	t->ro = 0;
	memset(t->seed, 0, sizeof(t->seed));
	return 0;
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

static void op_to_dev(struct thr *t)
{
	struct hmm_dmirror_cmd c;
	size_t first, n;
	int ret;

	pick_range(t, &first, &n);
	ret = dcmd(pick_fd(t), HMM_DMIRROR_MIGRATE_TO_DEV, addr_of(t, first),
		   t->scratch, n, &c);
	/*
	 * ENOENT: some page did not reach this device (another thread put
	 * it on the other device, reclaim had it in swap, it was pinned).
	 */
	if (ret == -EBUSY || ret == -ENOENT) {
		ADD(sh->accepted[OP_TO_DEV], 1);
		return;
	}
	if (ret) {
		unexpected(t, OP_TO_DEV, "migrate", ret);
		return;
	}
	ADD(sh->held_on_dev, c.cpages);
	check_data(t, OP_TO_DEV, "read-back", t->scratch, first, n);
}

static void op_to_sys(struct thr *t)
{
	struct hmm_dmirror_cmd c;
	size_t first, n;
	int ret;

	pick_range(t, &first, &n);
	ret = dcmd(pick_fd(t), HMM_DMIRROR_MIGRATE_TO_SYS, addr_of(t, first),
		   NULL, n, &c);
	if (ret)
		unexpected(t, OP_TO_SYS, "migrate", ret);
	else
		ADD(sh->moved_to_sys, c.cpages);
	check(t, OP_TO_SYS, first, n);
}

static void op_cpu(struct thr *t)
{
	size_t first, n;

	pick_range(t, &first, &n);
	if (!t->ro && rnd(&t->rng) % 2)
		cpu_write(t, first, n);
	check_cpu(t, OP_CPU, first, n);
}

static void op_dev_read(struct thr *t)
{
	struct hmm_dmirror_cmd c;
	size_t first, n;
	int ret;

	pick_range(t, &first, &n);
	ret = dcmd(pick_fd(t), HMM_DMIRROR_READ, addr_of(t, first),
		   t->scratch, n, &c);
	if (ret == -EBUSY)
		ADD(sh->accepted[OP_DEV_READ], 1);
	else if (ret)
		unexpected(t, OP_DEV_READ, "read", ret);
	else
		check_data(t, OP_DEV_READ, "device read", t->scratch, first, n);
}

/*
 * A device command that writes (a write, an exclusive grab) on a read-only
 * buffer: refused with EPERM, or with EBUSY when the range kept changing
 * under it for the driver's whole timeout (the sibling thread's munmap,
 * fork or mprotect on a loaded machine) before it got as far as the
 * permission.  Either way nothing may have changed.
 */
static void ro_refused(struct thr *t, enum op op, const char *what, int ret,
		       size_t first, size_t n)
{
	if (ret == -EPERM)
		ADD(sh->ro_denied[op], 1);
	else if (ret == -EBUSY)
		ADD(sh->accepted[op], 1);
	else
		unexpected(t, op, what, ret);
	check(t, op, first, n);
}

static void op_dev_write(struct thr *t)
{
	uint32_t newseed[MAXP];
	struct hmm_dmirror_cmd c;
	size_t first, n, i;
	int ret;

	pick_range(t, &first, &n);
	for (i = 0; i < n; i++) {
		newseed[i] = new_seed(t);
		fill_page(t->scratch + i * wpp, newseed[i]);
	}
	ret = dcmd(pick_fd(t), HMM_DMIRROR_WRITE, addr_of(t, first),
		   t->scratch, n, &c);
	if (t->ro) {
		ro_refused(t, OP_DEV_WRITE, "write to read-only", ret, first, n);
		return;
	}
	if (!ret) {
		memcpy(&t->seed[first], newseed, n * sizeof(*newseed));
		check(t, OP_DEV_WRITE, first, n);
		return;
	}
	if (ret == -EBUSY)
		ADD(sh->accepted[OP_DEV_WRITE], 1);
	else
		unexpected(t, OP_DEV_WRITE, "write", ret);
	adopt_either(t, OP_DEV_WRITE, newseed, first, n);
}

static void op_snapshot(struct thr *t)
{
	struct hmm_dmirror_cmd c;
	size_t first, n, i;
	int ret;

	pick_range(t, &first, &n);
	ret = dcmd(pick_fd(t), HMM_DMIRROR_SNAPSHOT, addr_of(t, first),
		   t->snap, n, &c);
	if (ret == -EBUSY) {
		ADD(sh->accepted[OP_SNAPSHOT], 1);
		return;
	}
	if (ret) {
		unexpected(t, OP_SNAPSHOT, "snapshot", ret);
		return;
	}
	for (i = 0; i < n; i++) {
		unsigned char b = t->snap[i];

		if (b == HMM_DMIRROR_PROT_ERROR ||
		    (t->ro && (b & HMM_DMIRROR_PROT_WRITE))) {
			ADD(sh->mismatch[OP_SNAPSHOT], 1);
			msg("w%d.%d snapshot: page %zu byte %#x%s", t->w, t->id,
			    first + i, b, t->ro ? " (ro)" : "");
			break;
		}
	}
}

static void op_excl(struct thr *t)
{
	struct hmm_dmirror_cmd c;
	size_t first, n, wf, wn;
	int fd = pick_fd(t), ret;

	pick_range(t, &first, &n);
	ret = dcmd(fd, HMM_DMIRROR_EXCLUSIVE, addr_of(t, first), t->scratch,
		   n, &c);
	if (t->ro) {
		ro_refused(t, OP_EXCL, "exclusive on read-only", ret, first, n);
		return;
	}
	if (ret == -EBUSY) {
		ADD(sh->accepted[OP_EXCL], 1);
		check(t, OP_EXCL, first, n);
		return;
	}
	if (ret) {
		unexpected(t, OP_EXCL, "exclusive", ret);
		return;
	}
	check_data(t, OP_EXCL, "exclusive read", t->scratch, first, n);

	/* A CPU write ends the device's exclusive access to those pages. */
	wf = first + rnd(&t->rng) % n;
	wn = 1 + rnd(&t->rng) % (first + n - wf);
	cpu_write(t, wf, wn);
	ret = dcmd(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, addr_of(t, wf), NULL, wn,
		   &c);
	if (ret)
		unexpected(t, OP_EXCL, "exclusive access after CPU write", ret);
	check_cpu(t, OP_EXCL, first, n);
}

static void op_remap(struct thr *t)
{
	int ret;

	munmap(t->p, t->np * ps);
	ret = map_buf(t, 1 + rnd(&t->rng) % SMALLP,
		      rnd(&t->rng) % NR_BUF_KINDS);
	if (ret) {
		unexpected(t, OP_REMAP, "mmap", ret);
		/* Keep the thread going with the smallest buffer. */
		while (map_buf(t, 1, BUF_SMALL))
			usleep(10000);
		return;
	}
	if (rnd(&t->rng) % 2)
		cpu_write(t, 0, t->np);
	check(t, OP_REMAP, 0, t->np);
}

static void op_fork(struct thr *t)
{
	struct hmm_dmirror_cmd c;
	size_t first, n;
	int st, fd, ret;
	pid_t pid;

	pid = fork();
	if (pid < 0) {
		unexpected(t, OP_FORK, "fork", -errno);
		return;
	}
	if (!pid) {
		/* Child: only this thread and its buffer exist here. */
		check_cpu(t, OP_FORK, 0, t->np);
		if (!t->ro) {
			pick_range(t, &first, &n);
			cpu_write(t, first, n);
			check_cpu(t, OP_FORK, 0, t->np);
		}
		if (rnd(&t->rng) % 2) {
			fd = dev_open(rnd(&t->rng) % NDEV);
			if (fd < 0) {
				unexpected(t, OP_FORK, "open in child", -errno);
				_exit(0);
			}
			ret = dcmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, t->p,
				   t->scratch, t->np, &c);
			if (!ret)
				check_data(t, OP_FORK, "child read-back",
					   t->scratch, 0, t->np);
			else if (ret != -EBUSY && ret != -ENOENT)
				unexpected(t, OP_FORK, "migrate in child", ret);
			check_cpu(t, OP_FORK, 0, t->np);
			close(fd);
		}
		_exit(0);
	}
	/* Parent: write its own copy while the child works on its own. */
	if (!t->ro) {
		pick_range(t, &first, &n);
		cpu_write(t, first, n);
	}
	check(t, OP_FORK, 0, t->np);
	if (waitpid(pid, &st, 0) != pid) {
		unexpected(t, OP_FORK, "waitpid", -errno);
	} else if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		ADD(sh->crashed, 1);
		msg("w%d.%d fork: child status %#x", t->w, t->id, st);
	}
	check_cpu(t, OP_FORK, 0, t->np);
}

static void op_mprotect(struct thr *t)
{
	int ro = !t->ro;

	if (mprotect(t->p, t->np * ps, ro ? PROT_READ : PROT_READ | PROT_WRITE))
		unexpected(t, OP_MPROTECT, "mprotect", -errno);
	else
		t->ro = ro;
	check(t, OP_MPROTECT, 0, t->np);
}

static void op_mremap(struct thr *t)
{
	size_t np = 1 + rnd(&t->rng) % SMALLP, i;
	void *q, *to = NULL;

	if (rnd(&t->rng) % 2) {
		/* Force a move to a place of our choosing. */
		to = mmap(NULL, np * ps, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (to == MAP_FAILED) {
			unexpected(t, OP_MREMAP, "mmap target", -errno);
			return;
		}
		q = mremap(t->p, t->np * ps, np * ps,
			   MREMAP_MAYMOVE | MREMAP_FIXED, to);
	} else {
		q = mremap(t->p, t->np * ps, np * ps, MREMAP_MAYMOVE);
	}
	if (q == MAP_FAILED) {
		unexpected(t, OP_MREMAP, "mremap", -errno);
		if (to)
			munmap(to, np * ps);
		return;
	}
	t->p = q;
	for (i = t->np; i < np; i++)
		t->seed[i] = 0;
	t->np = np;
	check(t, OP_MREMAP, 0, t->np);
}

static void op_dontneed(struct thr *t)
{
	size_t first, n, i;

	pick_range(t, &first, &n);
	if (madvise(addr_of(t, first), n * ps, MADV_DONTNEED)) {
		unexpected(t, OP_DONTNEED, "madvise", -errno);
	} else {
		for (i = first; i < first + n; i++)
			t->seed[i] = 0;
	}
	check(t, OP_DONTNEED, first, n);
}

static void op_release(struct thr *t)
{
	struct hmm_dmirror_cmd c;
	int ret;

	ret = dcmd(fds[rnd(&t->rng) % NDEV], HMM_DMIRROR_RELEASE, t->p, NULL,
		   1, &c);
	if (ret)
		unexpected(t, OP_RELEASE, "release", ret);
	else
		ADD(sh->evicted, c.cpages);
	check(t, OP_RELEASE, 0, t->np);
}

static void (*const op_fn[NR_OPS])(struct thr *t) = {
	[OP_TO_DEV] = op_to_dev, [OP_TO_SYS] = op_to_sys, [OP_CPU] = op_cpu,
	[OP_DEV_READ] = op_dev_read, [OP_DEV_WRITE] = op_dev_write,
	[OP_SNAPSHOT] = op_snapshot, [OP_EXCL] = op_excl,
	[OP_REMAP] = op_remap, [OP_FORK] = op_fork,
	[OP_MPROTECT] = op_mprotect, [OP_MREMAP] = op_mremap,
	[OP_DONTNEED] = op_dontneed, [OP_RELEASE] = op_release,
};

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	unsigned int total = 0, i;
	uint64_t r;
	int ret;

	for (i = 0; i < NR_OPS; i++)
		total += op_weight[i];
	ret = map_buf(t, 1 + rnd(&t->rng) % SMALLP, t->id % NR_BUF_KINDS);
	if (ret) {
		unexpected(t, OP_REMAP, "first mmap", ret);
		return NULL;
	}
	cpu_write(t, 0, t->np);
	while (!proc_stop && !sh->stop && !past(&sh->deadline)) {
		r = rnd(&t->rng) % total;
		for (i = 0; r >= op_weight[i]; i++)
			r -= op_weight[i];
		op_fn[i](t);
		ADD(sh->done[i], 1);
	}
	/* A clean end: everything must still be there. */
	check(t, OP_EXIT, 0, t->np);
	munmap(t->p, t->np * ps);
	return NULL;
}

/* One worker process: two threads until its lifetime or the run ends. */
static void worker(int w, uint64_t seed)
{
	static struct thr thr[2];
	struct timespec end;
	uint64_t rng = seed ^ (0x9e3779b97f4a7c15ull * (w + 1));
	int i, abrupt;

	setpgid(0, 0);
	home = w % NDEV;
	for (i = 0; i < NDEV; i++) {
		fds[i] = dev_open(i);
		if (fds[i] < 0) {
			ADD(sh->unexpected[OP_EXIT], 1);
			msg("w%d: open /dev/hmm_dmirror%d: %s", w, i,
			    strerror(errno));
			_exit(1);
		}
	}
	for (i = 0; i < 2; i++) {
		thr[i].w = w;
		thr[i].id = i;
		thr[i].rng = rnd(&rng) | 1;
		thr[i].scratch = malloc(MAXP * ps);
		if (!thr[i].scratch ||
		    pthread_create(&thr[i].tid, NULL, thread_main, &thr[i])) {
			msg("w%d: cannot start thread", w);
			_exit(1);
		}
	}
	/* Live 2 to 9 seconds, then end cleanly or abruptly. */
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += 2 + rnd(&rng) % 8;
	while (!sh->stop && !past(&end) && !past(&sh->deadline))
		usleep(20000);
	abrupt = !sh->stop && !past(&sh->deadline) && rnd(&rng) % 2;
	ADD(sh->done[OP_EXIT], 1);
	if (abrupt)
		_exit(0);
	proc_stop = 1;
	for (i = 0; i < 2; i++)
		pthread_join(thr[i].tid, NULL);
	_exit(0);
}

/* ------------------------------------------------------------------ */
/* Memory pressure (-p)                                                */
/* ------------------------------------------------------------------ */

static void oom_score_adj(const char *v)
{
	int fd = open("/proc/self/oom_score_adj", O_WRONLY);

	if (fd < 0 || write(fd, v, strlen(v)) < 0)
		msg("oom_score_adj %s: %s", v, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* A /proc/meminfo or /proc/vmstat figure, 0 when absent. */
static unsigned long proc_field(const char *file, const char *name)
{
	char line[128];
	size_t len = strlen(name);
	unsigned long v = 0;
	FILE *f = fopen(file, "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, len) &&
		    (line[len] == ' ' || line[len] == ':')) {
			v = strtoul(line + len + 1 + strspn(line + len + 1, " "),
				    NULL, 10);
			break;
		}
	}
	if (f)
		fclose(f);
	return v;
}

/* Swap in use now, in KiB. */
static unsigned long swap_used(void)
{
	return proc_field("/proc/meminfo", "SwapTotal") -
	       proc_field("/proc/meminfo", "SwapFree");
}

/*
 * The hog: map @bytes and write one word of every page, round after round,
 * until the run ends. Its pages are dirty anonymous memory the kernel can
 * only make room from by writing them to swap.
 */
static void hog(size_t bytes)
{
	size_t npages = bytes / ps, i;
	uint32_t round = 0;
	char *p;

	setpgid(0, 0);
	oom_score_adj("1000");
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		_exit(1);
	/* Huge pages fill it quickly; reclaim splits them to swap them. */
	madvise(p, bytes, MADV_HUGEPAGE);
	while (!sh->stop && (!sh->hog_ready || !past(&sh->deadline))) {
		round++;
		for (i = 0; i < npages && !sh->stop; i++)
			*(uint32_t *)(p + i * ps) = round ^ (uint32_t)i;
		sh->hog_ready = 1;
	}
	_exit(0);
}

static pid_t start_hog(size_t bytes)
{
	pid_t pid = fork();

	if (!pid)
		hog(bytes);
	if (pid > 0)
		ADD(sh->hog_runs, 1);
	return pid;
}

/* ------------------------------------------------------------------ */
/* 64 KiB folios                                                       */
/* ------------------------------------------------------------------ */

#define MTHP_64K "/sys/kernel/mm/transparent_hugepage/hugepages-64kB/enabled"

static char mthp_was[16];	/* the knob's value before the run, or "" */
static pid_t mthp_owner;

/* Put the 64 KiB knob back (at the supervisor's exit only). */
static void mthp_restore(void)
{
	if (mthp_was[0] && getpid() == mthp_owner &&
	    knob_set(MTHP_64K, mthp_was))
		printf("# could not restore %s to %s\n", MTHP_64K, mthp_was);
}

/*
 * Let BUF_MTHP buffers (MADV_HUGEPAGE) have 64 KiB folios, if the kernel
 * has that size: its knob goes to "madvise" for the run.
 */
static void mthp_enable(void)
{
	int ret;

	if (knob_get(MTHP_64K, mthp_was, sizeof(mthp_was))) {
		mthp_was[0] = '\0';
		printf("# no %s: no 64 KiB folios\n", MTHP_64K);
		return;
	}
	mthp_owner = getpid();
	atexit(mthp_restore);
	ret = knob_set(MTHP_64K, "madvise");
	if (ret)
		printf("# %s: %s\n", MTHP_64K, strerror(-ret));
	else
		printf("# 64 KiB folios: madvise for the run (was %s)\n",
		       mthp_was);
}

/* ------------------------------------------------------------------ */
/* Supervisor                                                          */
/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	struct hmm_dmirror_stats before[NDEV], after[NDEV];
	int secs = 25, nworkers = 4, opt, i, dfd[NDEV], failed = 0;
	uint64_t seed = 1;
	pid_t *pids;
	int hung = 0, gen = 0, extended = 0;
	struct timespec hang;
	unsigned long total = 0, mism = 0, unexp = 0;
	unsigned long swap0, swap_peak = 0, polls = 0;
	int pressure = 0;
	size_t hog_bytes = 0;
	pid_t hogpid = 0;

	while ((opt = getopt(argc, argv, "t:w:s:p:")) != -1) {
		switch (opt) {
		case 't':
			secs = atoi(optarg);
			break;
		case 'w':
			nworkers = atoi(optarg);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'p':
			pressure = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-t SECONDS] [-w WORKERS] [-s SEED] [-p PERCENT]\n",
				argv[0]);
			return 2;
		}
	}
	if (secs < 1 || nworkers < 1 || pressure < 0)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	ps = sysconf(_SC_PAGESIZE);
	wpp = ps / sizeof(uint32_t);
	printf("TAP version 13\n1..%d\n", 1 + NR_OPS + 1 + NDEV + !!pressure);
	printf("# hmm-stress: %d s, %d workers x 2 threads, seed %llu\n",
	       secs, nworkers, (unsigned long long)seed);
	if (pressure) {
		unsigned long avail = proc_field("/proc/meminfo", "MemAvailable");

		hog_bytes = (size_t)avail * 1024 / 100 * pressure;
		hog_bytes -= hog_bytes % ps;
		printf("# memory pressure: a hog over %d%% of the %lu MiB available, swap %lu MiB\n",
		       pressure, avail >> 10,
		       proc_field("/proc/meminfo", "SwapTotal") >> 10);
	}

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pids = calloc(nworkers, sizeof(*pids));
	if (sh == MAP_FAILED || !pids) {
		printf("Bail out! no memory\n");
		return 1;
	}
	if (dev_open_all(dfd, before, NDEV))
		return 1;
	mthp_enable();
	/* Orphans of abruptly ended workers (fork children) come to us. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	swap0 = swap_used();
	if (pressure) {
		/* The workers (our children) inherit it; the hog resets it. */
		oom_score_adj("-1000");
		hogpid = start_hog(hog_bytes);
		/* The run starts once the hog has filled its memory once. */
		for (i = 0; i < 60 * 50 && !sh->hog_ready; i++)
			usleep(20000);
		printf("# hog filled in %.1f s, swap in use %lu MiB\n",
		       i / 50.0, swap_used() >> 10);
	}
	clock_gettime(CLOCK_MONOTONIC, &sh->deadline);
	sh->deadline.tv_sec += secs;
	hang = sh->deadline;
	hang.tv_sec += HANG_SECS;

	for (;;) {
		struct timespec soon;
		int st;
		pid_t pid;

		/*
		 * Coverage: with a second to go and some kind never done,
		 * move the end a second further (the workers read it).
		 */
		clock_gettime(CLOCK_MONOTONIC, &soon);
		soon.tv_sec++;
		if (!sh->stop && !past(&sh->deadline) &&
		    extended < EXTEND_SECS && past_at(&soon, &sh->deadline) &&
		    !every_op_done()) {
			__atomic_store_n(&sh->deadline.tv_sec,
					 sh->deadline.tv_sec + 1,
					 __ATOMIC_RELAXED);
			hang.tv_sec++;
			extended++;
		}
		if (!past(&sh->deadline)) {
			for (i = 0; i < nworkers; i++) {
				if (pids[i])
					continue;
				pid = fork();
				if (!pid)
					worker(gen, seed);
				if (pid < 0) {
					printf("# fork: %s\n", strerror(errno));
					continue;
				}
				pids[i] = pid;
				gen++;
				ADD(sh->spawned, 1);
			}
		} else {
			sh->stop = 1;
		}
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			if (pid == hogpid) {
				/* SIGKILL: the OOM killer did its job. */
				if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
					ADD(sh->hog_kills, 1);
				else if (!WIFEXITED(st) || WEXITSTATUS(st))
					printf("# hog ended with status %#x\n", st);
				hogpid = past(&sh->deadline) ? 0 :
					 start_hog(hog_bytes);
				continue;
			}
			for (i = 0; i < nworkers; i++)
				if (pids[i] == pid)
					pids[i] = 0;
			if (!WIFEXITED(st) || WEXITSTATUS(st)) {
				ADD(sh->crashed, 1);
				printf("# process %d ended with status %#x\n",
				       pid, st);
			}
		}
		if (pid < 0 && errno == ECHILD && sh->stop)
			break;
		if (!(polls++ % 25)) {
			unsigned long used = swap_used();

			if (used > swap_peak)
				swap_peak = used;
		}
		if (!hung && past(&hang)) {
			hung = 1;
			printf("# processes still running %d s after the end, killing them\n",
			       HANG_SECS);
			for (i = 0; i < nworkers; i++)
				if (pids[i])
					kill(-pids[i], SIGKILL);
			if (hogpid > 0)
				kill(hogpid, SIGKILL);
		}
		usleep(20000);
	}

	if (extended)
		printf("# run extended by %d s until every operation kind was done\n",
		       extended);
	tap_ok(!sh->crashed && !hung, "processes: %lu workers spawned, none crashed or hung",
	       sh->spawned);
	for (i = 0; i < NR_OPS; i++) {
		printf("# %-10s %8lu done, %lu EBUSY, %lu EPERM (read-only), %lu mismatches, %lu unexpected errors\n",
		       op_name[i], sh->done[i], sh->accepted[i],
		       sh->ro_denied[i], sh->mismatch[i], sh->unexpected[i]);
		total += sh->done[i];
		mism += sh->mismatch[i];
		unexp += sh->unexpected[i];
		failed |= !tap_ok(sh->done[i] && !sh->mismatch[i] &&
				  !sh->unexpected[i],
				  "op %s: done, data intact, no unexpected error",
				  op_name[i]);
	}
	printf("# %lu operations, %lu pages checked, %lu mismatches, %lu unexpected errors\n",
	       total, sh->pages_checked, mism, unexp);
	printf("# pages: %lu on a device after migrating there, %lu migrated to system, %lu evicted\n",
	       sh->held_on_dev, sh->moved_to_sys, sh->evicted);
	tap_ok(!mism, "checksum mismatches: 0");

	printf("# swap in use: %lu KiB at the start, %lu KiB at the peak\n",
	       swap0, swap_peak);
	if (pressure) {
		printf("# hog: %lu runs, %lu killed by the OOM killer\n",
		       sh->hog_runs, sh->hog_kills);
		failed |= !tap_ok(swap_peak > swap0,
				  "memory pressure: reclaim pushed %lu MiB to swap",
				  (swap_peak - swap0) >> 10);
	}

	/* Every page a process held must be back; frees may lag a little. */
	for (i = 0; i < NDEV; i++) {
		int back = dev_settled(dfd[i], &before[i], &after[i], 100);

		printf("# dev%d: pages_in_use %llu -> %llu, to_device +%llu, to_system +%llu, faults +%llu, evictions +%llu\n",
		       i, (unsigned long long)before[i].pages_in_use,
		       (unsigned long long)after[i].pages_in_use,
		       (unsigned long long)(after[i].to_device - before[i].to_device),
		       (unsigned long long)(after[i].to_system - before[i].to_system),
		       (unsigned long long)(after[i].faults - before[i].faults),
		       (unsigned long long)(after[i].evictions - before[i].evictions));
		failed |= !tap_ok(back,
				  "dev%d pages_in_use back to its value before the run",
				  i);
		close(dfd[i]);
	}
	return failed || sh->crashed || hung || mism ? 1 : 0;
}
