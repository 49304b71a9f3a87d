// SPDX-License-Identifier: GPL-2.0
/*
 * hmm-faults: inject allocation failures (failslab and fail_page_alloc)
 * into device migrations both ways, of small pages and of THPs (huge
 * device folios, and the splits when a huge folio cannot be had), into the
 * CPU fault that brings a device-private page or THP home, and into the
 * growth of a device's memory (memremap_pages()), and check that each
 * fails cleanly: an error to the caller or pages left where they were,
 * the process's data intact, and the device's page count back where it
 * started.
 *
 * Two ways of injecting, both scoped to this process:
 *  - sweeps: /proc/self/task/TID/fail-nth makes the n-th allocation of the
 *    next operation fail, for n = 1, 2, ... until the operation runs to
 *    its end without reaching the n-th allocation (every allocation point
 *    it has has then failed once);
 *  - random: /proc/self/make-it-fail with a probability on both
 *    attributes (task-filter), over a number of round trips.
 * Both need CONFIG_FAULT_INJECTION_DEBUG_FS, CONFIG_FAILSLAB and
 * CONFIG_FAIL_PAGE_ALLOC; the attributes are set so that every allocation
 * counts (order 0, highmem and sleeping ones too) and nothing is printed.
 *
 * Outcomes accepted from an operation that met a failure:
 *   MIGRATE_TO_DEV  0 (some pages may stay in system memory), ENOMEM,
 *                   EFAULT (the read-back could not fault a page in),
 *                   EBUSY
 *   MIGRATE_TO_SYS  0 (some pages may stay on the device), ENOMEM
 *   CPU fault       the access completes (VM_FAULT_OOM retries the
 *                   fault) or SIGBUS
 * TAP output, one test per scenario.
 *
 * The memremap_pages() sweep covers the first migration into a device
 * without memory, which maps a chunk (the module is reloaded after each
 * failure the driver absorbed). It relies on the series' patch to x86
 * add_pages(), which no longer WARNs when __add_pages() runs out of
 * memory; on a kernel without it the sweep's first failure is a kernel
 * warning, which the harness counts as a failure.
 *
 * Usage: hmm-faults
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
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
#include <sys/syscall.h>

#include "hmm-util.h"

#define NDEV		4
#define NP		16		/* pages per buffer */
#define THP_SIZE	(2UL << 20)	/* a buffer that is one THP */
#define MAX_NTH		600		/* longest sweep */
#define SWEEP_SECS	8		/* and its time budget */
#define DBG		"/sys/kernel/debug/"

static long ps;
/*
 * Pages per buffer of the scenario running, and whether its buffers are
 * one THP each (which a private device takes whole, as one huge folio).
 */
static unsigned long np = NP;
static int huge;
static int nth_fd = -1, fail_fd = -1;
static int dev[NDEV];

/* Figures of one scenario. */
struct tally {
	unsigned long runs, injected, errs[4], sigbus, mismatches, unexpected;
	unsigned long moved, chunk_fails, reloads;
	int complete;		/* the sweep reached a run with no failure */
};

static int put(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY), ret;

	if (fd < 0)
		return -errno;
	ret = write(fd, val, strlen(val)) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

static int attrs(int on)
{
	static const char *const dirs[] = { "failslab", "fail_page_alloc" };
	char p[128];
	unsigned int i;
	int ret = 0;

	for (i = 0; i < 2; i++) {
#define SET(f, v) do { \
		snprintf(p, sizeof(p), DBG "%s/" f, dirs[i]); \
		ret |= put(p, v); \
	} while (0)
		SET("probability", "0");
		SET("interval", "1");
		SET("times", "-1");
		SET("space", "0");
		SET("verbose", "0");
		SET("task-filter", on ? "Y" : "N");
		SET("ignore-gfp-wait", on ? "N" : "Y");
		if (i) {
			SET("ignore-gfp-highmem", on ? "N" : "Y");
			SET("min-order", on ? "0" : "1");
		}
#undef SET
	}
	return ret;
}

static void probability(int pct)
{
	char v[8];

	snprintf(v, sizeof(v), "%d", pct);
	put(DBG "failslab/probability", v);
	put(DBG "fail_page_alloc/probability", v);
}

/* Failures left to inject, summed over both attributes. */
static long get_times(void)
{
	static const char *const f[] = { DBG "failslab/times",
					 DBG "fail_page_alloc/times" };
	long sum = 0;
	char v[32];
	int i, fd;

	for (i = 0; i < 2; i++) {
		memset(v, 0, sizeof(v));
		fd = open(f[i], O_RDONLY);
		if (fd < 0 || read(fd, v, sizeof(v) - 1) <= 0)
			v[0] = 0;
		if (fd >= 0)
			close(fd);
		sum += atol(v);
	}
	return sum;
}

/* fail-nth: arm before an operation, then disarm and say if it fired. */
static void arm(unsigned int n)
{
	char v[16];
	int len = snprintf(v, sizeof(v), "%u", n);

	if (pwrite(nth_fd, v, len, 0) != len)
		abort();
}

static int disarm(void)
{
	char v[16] = "";
	ssize_t len = pread(nth_fd, v, sizeof(v) - 1, 0);

	if (pwrite(nth_fd, "0", 1, 0) != 1 || len <= 0)
		abort();
	return atoi(v) == 0;
}

static void make_it_fail(int on)
{
	if (pwrite(fail_fd, on ? "1" : "0", 1, 0) != 1)
		abort();
}

static uint32_t *new_buf(uint32_t seed)
{
	size_t len = np * ps, slack = huge ? len : 0;
	char *m = mmap(NULL, len + slack, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = m;

	if (m == MAP_FAILED)
		return NULL;
	if (huge) {
		/* a THP needs a naturally aligned place */
		p = (char *)(((uintptr_t)m + len - 1) & ~(uintptr_t)(len - 1));
		if (p > m)
			munmap(m, p - m);
		munmap(p + len, m + slack - p);
	}
	madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	pattern_fill(p, len, seed);
	return (uint32_t *)p;
}

static size_t bad_pages(const uint32_t *p, uint32_t seed)
{
	size_t i, bad = 0, w = ps / 4;

	for (i = 0; i < np * w; i++) {
		if (p[i] != pattern_word(seed, i)) {
			bad++;
			i = (i / w + 1) * w - 1;
		}
	}
	return bad;
}

/* The buffer holds its pattern, seen by a device and by the CPU. */
static void verify(struct tally *t, int d, uint32_t *p, uint32_t seed,
		   uint32_t *io, const char *what, unsigned long n)
{
	struct hmm_dmirror_cmd c;
	size_t bad;
	int ret;

	ret = dcmd(dev[d], HMM_DMIRROR_READ, p, io, np, &c);
	if (ret) {
		t->unexpected++;
		printf("# %s n=%lu: device read after the failure: %s\n",
		       what, n, strerror(-ret));
	} else if ((bad = bad_pages(io, seed))) {
		t->mismatches += bad;
		printf("# %s n=%lu: %zu pages differ (device read)\n",
		       what, n, bad);
	}
	bad = bad_pages(p, seed);
	if (bad) {
		t->mismatches += bad;
		printf("# %s n=%lu: %zu pages differ (CPU)\n", what, n, bad);
	}
}

static void count_err(struct tally *t, const char *what, unsigned long n,
		      int ret, const int *accepted)
{
	int i;

	if (!ret)
		return;
	for (i = 0; accepted[i]; i++) {
		if (ret == -accepted[i]) {
			t->errs[i]++;
			return;
		}
	}
	t->unexpected++;
	printf("# %s n=%lu: unexpected error %s\n", what, n, strerror(-ret));
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ENOENT: an allocation failed, so a page stayed in system memory. */
static const int to_dev_errs[] = { ENOMEM, EFAULT, EBUSY, ENOENT, 0 };
static const int to_sys_errs[] = { ENOMEM, 0 };

/*
 * Sweep fail-nth over one migration of a fresh buffer: into device @d, or
 * (@to_sys) back out of it after an uninjected migration in.
 */
static void sweep_migration(struct tally *t, int d, uint32_t *io, int to_sys)
{
	unsigned long req = to_sys ? HMM_DMIRROR_MIGRATE_TO_SYS :
				     HMM_DMIRROR_MIGRATE_TO_DEV;
	const char *what = to_sys ? "to-sys" : "to-dev";
	struct hmm_dmirror_cmd c;
	double end = now() + SWEEP_SECS;
	unsigned long n;
	uint32_t *p;
	int ret;

	for (n = 1; n <= MAX_NTH && now() < end; n++) {
		p = new_buf(n);
		if (!p) {
			t->unexpected++;
			return;
		}
		if (to_sys) {
			ret = dcmd(dev[d], HMM_DMIRROR_MIGRATE_TO_DEV, p, io,
				   np, &c);
			if (ret || c.cpages != np) {
				t->unexpected++;
				printf("# to-sys n=%lu: setup migration: %s, %llu pages\n",
				       n, strerror(-ret),
				       (unsigned long long)c.cpages);
			}
		}
		arm(n);
		ret = dcmd(dev[d], req, p, to_sys ? NULL : io, np, &c);
		t->injected += disarm();
		t->runs++;
		if (!ret)
			t->moved += c.cpages;
		count_err(t, what, n, ret, to_sys ? to_sys_errs : to_dev_errs);
		verify(t, d, p, n, io, what, n);
		munmap(p, np * ps);
		if (t->injected < n) {
			t->complete = 1;
			break;
		}
	}
}

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(bus_jmp, 1);
}

/* Sweep fail-nth over a CPU read of a device-private page. */
static void sweep_cpu_fault(struct tally *t, int d, uint32_t *io)
{
	struct hmm_dmirror_cmd c;
	double end = now() + SWEEP_SECS;
	volatile uint32_t sink;
	unsigned long n;
	uint32_t *p;
	int ret;

	signal(SIGBUS, on_sigbus);
	for (n = 1; n <= MAX_NTH && now() < end; n++) {
		p = new_buf(n);
		if (!p) {
			t->unexpected++;
			return;
		}
		ret = dcmd(dev[d], HMM_DMIRROR_MIGRATE_TO_DEV, p, io, np, &c);
		if (ret || c.cpages != np) {
			t->unexpected++;
			printf("# cpu-fault n=%lu: setup migration: %s, %llu pages\n",
			       n, strerror(-ret), (unsigned long long)c.cpages);
		}
		if (sigsetjmp(bus_jmp, 1)) {
			t->sigbus++;
		} else {
			arm(n);
			sink = p[np / 2 * ps / 4 + 3];
			(void)sink;
		}
		t->injected += disarm();
		t->runs++;
		verify(t, d, p, n, io, "cpu-fault", n);
		munmap(p, np * ps);
		if (t->injected < n) {
			t->complete = 1;
			break;
		}
	}
	signal(SIGBUS, SIG_DFL);
}

/* "rmmod test_hmm && modprobe test_hmm <its parameters>", set by main(). */
static char reload_cmd[160];

static int reload(void)
{
	int i, ret;

	for (i = 0; i < NDEV; i++)
		close(dev[i]);
	ret = system(reload_cmd);
	for (i = 0; i < NDEV; i++) {
		dev[i] = dev_open(i);
		if (dev[i] < 0)
			ret = -1;
	}
	return ret;
}

/*
 * Sweep fail-nth over the first migration (of one page) into a device
 * that has no memory yet, so that it has to map a chunk with
 * memremap_pages(). A failure the driver absorbed (a fallback, or one
 * after the chunk was mapped) leaves the device with memory: the module
 * is then reloaded so that the next n again finds a device without any.
 * A failed chunk shows as a clean run that moved nothing and left the
 * device without memory.
 */
static void sweep_memremap(struct tally *t, int d, uint32_t *io)
{
	struct hmm_dmirror_stats st;
	struct hmm_dmirror_cmd c;
	double end = now() + 3 * SWEEP_SECS;
	unsigned long n;
	int ret, fired;
	uint32_t *p;

	for (n = 1; n <= MAX_NTH && now() < end; n++) {
		p = new_buf(n);
		if (!p) {
			t->unexpected++;
			return;
		}
		arm(n);
		ret = dcmd(dev[d], HMM_DMIRROR_MIGRATE_TO_DEV, p, io, 1, &c);
		fired = disarm();
		t->injected += fired;
		t->runs++;
		if (!ret)
			t->moved += c.cpages;
		count_err(t, "memremap", n, ret, to_dev_errs);
		if (dev_stats(dev[d], &st)) {
			t->unexpected++;
			munmap(p, np * ps);
			return;
		}
		/* Nothing could move: MIGRATE_TO_DEV reports ENOENT. */
		if (fired && ret == -ENOENT && !st.pages_total)
			t->chunk_fails++;
		verify(t, d, p, n, io, "memremap", n);
		munmap(p, np * ps);
		if (!fired) {
			t->complete = st.pages_total != 0;
			break;
		}
		if (st.pages_total) {
			t->reloads++;
			if (reload()) {
				t->unexpected++;
				printf("# memremap n=%lu: module reload failed\n", n);
				return;
			}
		}
	}
}

/* One migration of @p into device @d, or (@to_sys) out of it, failing at random. */
static void random_migration(struct tally *t, int d, uint32_t *p,
			     uint32_t *io, int trip, int to_sys)
{
	struct hmm_dmirror_cmd c;
	int ret;

	make_it_fail(1);
	ret = dcmd(dev[d], to_sys ? HMM_DMIRROR_MIGRATE_TO_SYS :
				    HMM_DMIRROR_MIGRATE_TO_DEV,
		   p, to_sys ? NULL : io, np, &c);
	make_it_fail(0);
	count_err(t, to_sys ? "random to-sys" : "random to-dev", trip, ret,
		  to_sys ? to_sys_errs : to_dev_errs);
	if (!ret)
		t->moved += c.cpages;
}

/* Random failures (make-it-fail) over migration round trips. */
static void random_trips(struct tally *t, int d, uint32_t *io, int trips)
{
	int i;
	uint32_t *p;

	probability(10);
	put(DBG "failslab/times", "1000000");
	put(DBG "fail_page_alloc/times", "1000000");
	for (i = 0; i < trips; i++) {
		p = new_buf(1000 + i);
		if (!p) {
			t->unexpected++;
			break;
		}
		random_migration(t, d, p, io, i, 0);
		random_migration(t, d, p, io, i, 1);
		t->runs += 2;
		verify(t, d, p, 1000 + i, io, "random", i);
		munmap(p, np * ps);
	}
	probability(0);
	t->injected += 2 * 1000000 - get_times();
}

static void report(const char *name, struct tally *t, const int *errs)
{
	int i;

	printf("# %s: %lu runs, %lu failures injected, %lu pages moved, %lu SIGBUS",
	       name, t->runs, t->injected, t->moved, t->sigbus);
	for (i = 0; errs && errs[i]; i++)
		printf(", %lu %s", t->errs[i], strerrorname_np(errs[i]));
	printf(", %lu mismatches, %lu unexpected%s\n", t->mismatches,
	       t->unexpected, t->complete ? ", every failure point covered" :
	       "");
}

int main(void)
{
	struct hmm_dmirror_stats before[NDEV], after[NDEV];
	int i, to_sys;
	struct tally t;
	char path[64];
	uint32_t *io;

	ps = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n1..%d\n", 13 + NDEV);
	io = malloc(THP_SIZE);
	if (dev_open_all(dev, before, NDEV))
		return 1;
	strcpy(reload_cmd, "rmmod test_hmm && ");
	if (hmm_load_cmd(reload_cmd + strlen(reload_cmd),
			 sizeof(reload_cmd) - strlen(reload_cmd))) {
		printf("Bail out! test_hmm's parameters are not readable\n");
		return 1;
	}
	snprintf(path, sizeof(path), "/proc/self/task/%ld/fail-nth",
		 (long)syscall(SYS_gettid));
	nth_fd = open(path, O_RDWR);
	fail_fd = open("/proc/self/make-it-fail", O_RDWR);
	tap_ok(nth_fd >= 0 && fail_fd >= 0 && !attrs(1),
	       "fault injection available (fail-nth, make-it-fail, failslab, fail_page_alloc)");
	if (nth_fd < 0 || fail_fd < 0)
		return 1;

	/*
	 * Devices 1 and 3 are left untouched until here.  A program that ran
	 * before this one may have given them memory (a device keeps its
	 * chunks until the driver unloads): reload the driver then.
	 */
	if (before[1].pages_total || before[3].pages_total) {
		printf("# devices 1 and 3 have memory already: reloading test_hmm\n");
		if (reload()) {
			printf("Bail out! test_hmm did not reload\n");
			return 1;
		}
		for (i = 0; i < NDEV; i++) {
			if (dev_stats(dev[i], &before[i])) {
				printf("Bail out! no counters from device %d\n",
				       i);
				return 1;
			}
		}
	}
	for (i = 1; i < NDEV; i += 2) {
		char name[32];

		memset(&t, 0, sizeof(t));
		snprintf(name, sizeof(name), "memremap dev%d", i);
		if (before[i].pages_total) {
			printf("# dev%d already has memory: %llu pages\n", i,
			       (unsigned long long)before[i].pages_total);
		} else {
			sweep_memremap(&t, i, io);
			report(name, &t, to_dev_errs);
		}
		printf("# %s: %lu chunk additions failed cleanly, %lu module reloads\n",
		       name, t.chunk_fails, t.reloads);
		tap_ok(!before[i].pages_total && t.chunk_fails && !t.mismatches &&
		       !t.unexpected,
		       "%s: a failed memremap_pages() leaves no trace, the next one works",
		       name);
	}

	/* Device 0 (private) and device 2 (coherent), each way. */
	for (i = 0; i < NDEV; i += 2) {
		const char *kind = i ? "coherent" : "private";

		for (to_sys = 0; to_sys < 2; to_sys++) {
			char name[32];

			memset(&t, 0, sizeof(t));
			sweep_migration(&t, i, io, to_sys);
			snprintf(name, sizeof(name), "%s %s",
				 to_sys ? "to-sys" : "to-dev", kind);
			report(name, &t, to_sys ? to_sys_errs : to_dev_errs);
			tap_ok(t.injected && !t.mismatches && !t.unexpected,
			       "migration %s %s memory fails cleanly at every allocation",
			       to_sys ? "from" : "to", kind);
		}
	}

	memset(&t, 0, sizeof(t));
	sweep_cpu_fault(&t, 0, io);
	report("cpu-fault private", &t, NULL);
	tap_ok(t.injected && !t.mismatches && !t.unexpected,
	       "CPU fault on a device-private page survives a failure at every allocation");

	/*
	 * Device 0 again, on buffers that are one THP each: the huge device
	 * folio, the THP on the way back and the splits when either cannot
	 * be had.
	 */
	np = THP_SIZE / ps;
	huge = 1;
	for (to_sys = 0; to_sys < 2; to_sys++) {
		memset(&t, 0, sizeof(t));
		sweep_migration(&t, 0, io, to_sys);
		report(to_sys ? "to-sys private THP" : "to-dev private THP", &t,
		       to_sys ? to_sys_errs : to_dev_errs);
		tap_ok(t.injected && !t.mismatches && !t.unexpected,
		       "migration of a THP %s private memory fails cleanly at every allocation",
		       to_sys ? "from" : "to");
	}
	memset(&t, 0, sizeof(t));
	sweep_cpu_fault(&t, 0, io);
	report("cpu-fault private THP", &t, NULL);
	tap_ok(t.injected && !t.mismatches && !t.unexpected,
	       "CPU fault on a device THP survives a failure at every allocation");
	np = NP;
	huge = 0;

	memset(&t, 0, sizeof(t));
	random_trips(&t, 0, io, 40);
	random_trips(&t, 2, io, 40);
	report("random", &t, to_dev_errs);
	tap_ok(!t.mismatches && !t.unexpected,
	       "random allocation failures (10%%) during migration round trips");

	tap_ok(!attrs(0), "fault injection attributes restored");
	for (i = 0; i < NDEV; i++) {
		int back = dev_settled(dev[i], &before[i], &after[i], 50);

		printf("# dev%d: pages_in_use %llu -> %llu, pages_total %llu -> %llu\n",
		       i, (unsigned long long)before[i].pages_in_use,
		       (unsigned long long)after[i].pages_in_use,
		       (unsigned long long)before[i].pages_total,
		       (unsigned long long)after[i].pages_total);
		tap_ok(back, "dev%d pages_in_use back to its value before the run",
		       i);
	}
	return 0;
}
