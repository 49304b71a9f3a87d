// SPDX-License-Identifier: GPL-2.0
/*
 * Tests for HMM mirroring and ZONE_DEVICE migration, driven through the
 * dmirror test driver (lib/test_hmm.c, ABI in lib/test_hmm_uapi.h).
 *
 * Each /dev/hmm_dmirrorN node is one simulated device: 0 and 1 keep the
 * pages migrated to them in DEVICE_PRIVATE memory, 2 and 3 in
 * DEVICE_COHERENT memory. The "hmm" fixture opens one device of a kind and
 * a second device of the same kind (its "peer"); its two variants run every
 * body once per kind. Where the kinds behave differently (a CPU touch
 * brings a private page home but reads a coherent page where it is), the
 * body asserts the behaviour of each.
 *
 * What is asserted is what the kernel did, not what the driver says it did:
 * data is read back through the CPU and through the device, the state of
 * each page comes from HMM_DMIRROR_SNAPSHOT, and where the driver has them
 * (HMM_DMIRROR_STATS) the device's counters are compared before and after.
 *
 * Each case asserts this kernel's behaviour, one answer per question.
 * The suite also runs against the unmodified 6.12 driver, which has no
 * STATS command: it rejects it like any unknown command, so the counter
 * checks are left out there and the rest of each test still runs. What
 * 6.12 does differently (a bug this series fixes, another errno for bad
 * input) fails there: such a case says so in its comment, and the
 * harness that runs the suite on 6.12 lists it as expected to fail.
 *
 * Layout: a small library first (ioctl wrappers, buffers with guard pages,
 * data patterns, snapshot and counter checks, THP and hugetlb set-up), then
 * the fixture, then the cases grouped by subject. Like every mm selftest the
 * program is linked with vm_util.c (see the Makefile), whose helpers it
 * uses for the THP and hugetlb page sizes, for whether a range is one THP
 * and for the process's anonymous RSS.
 */
#define _GNU_SOURCE
#include "../kselftest_harness.h"
#include "vm_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <lib/test_hmm_uapi.h>
#include <mm/gup_test.h>

#define DEV_PATH_FMT		"/dev/hmm_dmirror%d"
#define GUP_TEST_PATH		"/sys/kernel/debug/gup_test"
#define HUGE_1G_NR_PATH \
	"/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT		26
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB		0x0004U
#endif

/* gup_flags for gup_test are the kernel's FOLL_* bits (mm_types.h). */
#define GUP_FOLL_WRITE		0x01

/* Snapshot byte shorthands. */
#define SNAP_ERR	HMM_DMIRROR_PROT_ERROR
#define SNAP_NONE	HMM_DMIRROR_PROT_NONE
#define SNAP_R		HMM_DMIRROR_PROT_READ
#define SNAP_W		HMM_DMIRROR_PROT_WRITE
#define SNAP_ZERO_R	(HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ)

/* ------------------------------------------------------------------ */
/* ioctl wrappers                                                      */
/* ------------------------------------------------------------------ */

static int dev_open(int unit)
{
	char path[32];

	snprintf(path, sizeof(path), DEV_PATH_FMT, unit);
	return open(path, O_RDWR | O_CLOEXEC);
}

/* Are the coherent devices (units 2 and 3) there? */
static bool coherent_present(void)
{
	char path[32];

	snprintf(path, sizeof(path), DEV_PATH_FMT, 2);
	return !access(path, F_OK);
}

/*
 * Issue one range command. Returns 0 or -errno; *out (if given) receives
 * the command block as the driver left it (cpages, faults).
 */
static int dmirror_raw(int fd, unsigned long req, unsigned long addr,
		       unsigned long npages, unsigned long ptr,
		       struct hmm_dmirror_cmd *out)
{
	struct hmm_dmirror_cmd cmd;
	int ret;

	do {
		memset(&cmd, 0, sizeof(cmd));
		cmd.addr = addr;
		cmd.ptr = ptr;
		cmd.npages = npages;
		ret = ioctl(fd, req, &cmd);
	} while (ret && errno == EINTR);
	if (out)
		*out = cmd;
	return ret ? -errno : 0;
}

#define dmirror(fd, req, addr, npages, ptr, out) \
	dmirror_raw(fd, req, (unsigned long)(addr), npages, \
		    (unsigned long)(ptr), out)

/* HMM_DMIRROR_FLAGS: the flags word travels in npages. */
static int set_flags(int fd, unsigned long long flags)
{
	return dmirror_raw(fd, HMM_DMIRROR_FLAGS, 0, flags, 0, NULL);
}

/*
 * 1: the device has counters; 0: it refuses HMM_DMIRROR_STATS the way a
 * driver without the command does. That is ENOTTY, or EINVAL from 6.12,
 * which reads the (zeroed) argument as a range command with npages == 0.
 * Anything else is returned as -errno.
 */
static int stats_probe(int fd)
{
	struct hmm_dmirror_stats st;

	memset(&st, 0, sizeof(st));
	if (!ioctl(fd, HMM_DMIRROR_STATS, &st))
		return 1;
	if (errno == ENOTTY || errno == EINVAL)
		return 0;
	return -errno;
}

static void stats_get(struct __test_metadata *_metadata, int fd, bool have,
		      struct hmm_dmirror_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!have)
		return;
	ASSERT_EQ(0, ioctl(fd, HMM_DMIRROR_STATS, st))
		TH_LOG("HMM_DMIRROR_STATS: %s", strerror(errno));
	ASSERT_LE(st->pages_in_use, st->pages_total);
}

/* ------------------------------------------------------------------ */
/* Data patterns                                                       */
/* ------------------------------------------------------------------ */

/*
 * Word i of a buffer filled with @seed holds pat(seed, i): every word of
 * every page differs, so a page copied to the wrong place, a stale page or
 * a zeroed page is caught, and a sub-range can be checked on its own by
 * giving the word index it starts at.
 */
static uint32_t pat(uint32_t seed, size_t i)
{
	uint32_t x = seed * 0x9e3779b9u + (uint32_t)i * 0x85ebca6bu;

	x ^= x >> 15;
	return x * 0x2c1b3c6du + 1;
}

static void pattern_fill_from(void *p, size_t bytes, uint32_t seed,
			      size_t first_byte)
{
	uint32_t *w = p;
	size_t i, n = bytes / sizeof(*w), base = first_byte / sizeof(*w);

	for (i = 0; i < n; i++)
		w[i] = pat(seed, base + i);
}

/* Byte offset of the first word that differs, or -1. */
static long pattern_check_from(const void *p, size_t bytes, uint32_t seed,
			       size_t first_byte)
{
	const uint32_t *w = p;
	size_t i, n = bytes / sizeof(*w), base = first_byte / sizeof(*w);

	/* Real loads every time: the reads are what fault pages home. */
	for (i = 0; i < n; i++)
		if (__atomic_load_n(&w[i], __ATOMIC_RELAXED) !=
		    pat(seed, base + i))
			return (long)(i * sizeof(*w));
	return -1;
}

#define pattern_fill(p, bytes, seed)	pattern_fill_from(p, bytes, seed, 0)
#define pattern_check(p, bytes, seed)	pattern_check_from(p, bytes, seed, 0)

/* Byte offset of the first byte that is not @c, or -1. */
static long bytes_check(const void *p, size_t bytes, unsigned char c)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < bytes; i++)
		if (__atomic_load_n(&b[i], __ATOMIC_RELAXED) != c)
			return (long)i;
	return -1;
}

/* Read one byte for real (to fault the page in for reading). */
static void cpu_touch(const char *p)
{
	(void)__atomic_load_n(p, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* Buffers                                                             */
/* ------------------------------------------------------------------ */

/*
 * A mapping under test with one PROT_NONE guard page on each side, so it
 * never merges with a neighbour and a walk that runs off its end meets a
 * mapping the device may not touch. @dev is an ordinary heap buffer the
 * size of the mapping for the data commands, @snap one byte per page.
 */
struct tbuf {
	char *cpu;
	size_t size;
	unsigned long npages;
	char *dev;
	unsigned char *snap;
	char *resv;
	size_t resv_size;
};

static struct tbuf *tbuf_map(size_t psize, unsigned long npages, int prot,
			     int flags, int fd, off_t off)
{
	struct tbuf *b = calloc(1, sizeof(*b));
	void *p;

	if (!b)
		return NULL;
	b->npages = npages;
	b->size = npages * psize;
	b->resv_size = b->size + 2 * psize;
	b->resv = mmap(NULL, b->resv_size, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b->resv == MAP_FAILED)
		goto fail;
	p = mmap(b->resv + psize, b->size, prot, flags | MAP_FIXED, fd, off);
	if (p == MAP_FAILED)
		goto fail_unmap;
	b->cpu = p;
	/*
	 * Private anonymous buffers stay in small pages unless a test asks
	 * for THP: whether a THP backs a range is then never left to chance.
	 */
	if ((flags & MAP_ANONYMOUS) && (flags & MAP_PRIVATE))
		madvise(b->cpu, b->size, MADV_NOHUGEPAGE);
	b->dev = malloc(b->size);
	b->snap = malloc(npages);
	if (!b->dev || !b->snap)
		goto fail_free;
	memset(b->dev, 0, b->size);
	return b;

fail_free:
	free(b->dev);
	free(b->snap);
fail_unmap:
	munmap(b->resv, b->resv_size);
fail:
	free(b);
	return NULL;
}

static struct tbuf *tbuf_anon(size_t psize, unsigned long npages, int prot)
{
	return tbuf_map(psize, npages, prot, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
}

static void tbuf_free(struct tbuf *b)
{
	if (!b)
		return;
	munmap(b->resv, b->resv_size);
	free(b->dev);
	free(b->snap);
	free(b);
}

/*
 * Fault in the data buffer for good: tbuf_map()'s malloc() and memset()
 * to zero may have been folded into a calloc() that touches nothing.
 */
static void tb_touch_dev(struct tbuf *b)
{
	memset(b->dev, 0xff, b->size);
}

static char *tb_page(const struct tbuf *b, size_t psize, unsigned long i)
{
	return b->cpu + i * psize;
}

/* Run @req over pages [first, first + n) of @b, data in b->dev/b->snap. */
static int tb_cmd_range(int fd, unsigned long req, struct tbuf *b,
			size_t psize, unsigned long first, unsigned long n,
			struct hmm_dmirror_cmd *c)
{
	void *ptr;

	if (req == HMM_DMIRROR_SNAPSHOT)
		ptr = b->snap + first;
	else
		ptr = b->dev + first * psize;
	return dmirror(fd, req, b->cpu + first * psize, n, ptr, c);
}

static int tb_cmd(int fd, unsigned long req, struct tbuf *b,
		  struct hmm_dmirror_cmd *c)
{
	return tb_cmd_range(fd, req, b, b->size / b->npages, 0, b->npages, c);
}

/*
 * The device reads all of @b into b->dev, cleared first: 0 when that holds
 * pattern @seed throughout, else the command's -errno or 1 + the index of
 * the first word that differs.
 */
static long dev_read_check(int fd, struct tbuf *b, struct hmm_dmirror_cmd *c,
			   uint32_t seed)
{
	long bad;
	int ret;

	memset(b->dev, 0, b->size);
	ret = tb_cmd(fd, HMM_DMIRROR_READ, b, c);
	if (ret)
		return ret;
	bad = pattern_check(b->dev, b->size, seed);
	return bad < 0 ? 0 : bad + 1;
}

/* A file (memfd or an unlinked file in /tmp) of @size bytes of @seed. */
static int data_file(bool memfd, size_t size, uint32_t seed)
{
	char path[] = "/tmp/hmm-tests-XXXXXX";
	void *data;
	int fd;

	if (memfd) {
		fd = memfd_create("hmm-tests", MFD_CLOEXEC);
	} else {
		fd = mkstemp(path);
		if (fd >= 0)
			unlink(path);
	}
	if (fd < 0)
		return -1;
	data = malloc(size);
	if (!data || ftruncate(fd, size)) {
		free(data);
		close(fd);
		return -1;
	}
	pattern_fill(data, size, seed);
	if (pwrite(fd, data, size, 0) != (ssize_t)size) {
		free(data);
		close(fd);
		return -1;
	}
	free(data);
	return fd;
}

/* ------------------------------------------------------------------ */
/* Snapshot checks                                                     */
/* ------------------------------------------------------------------ */

static const char *snap_name(unsigned char m)
{
	switch (m & 0xf0) {
	case HMM_DMIRROR_PROT_ZERO:
		return "zero";
	case HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL:
		return "private-local";
	case HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE:
		return "private-remote";
	case HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL:
		return "coherent-local";
	case HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE:
		return "coherent-remote";
	case 0xf0:
		return "error";
	default:
		return "system";
	}
}

/*
 * Snapshot @npages pages at @addr through @fd and compare page i with
 * want[i] (or with want[0] for every page when @all). Every mismatch is
 * logged before the test fails.
 */
static void snap_cmp(struct __test_metadata *_metadata, int fd, void *addr,
		     unsigned long npages, const unsigned char *want, bool all)
{
	struct hmm_dmirror_cmd c;
	unsigned long i, bad = 0;
	unsigned char *m = malloc(npages);

	ASSERT_NE(NULL, m);
	memset(m, 0xee, npages);
	ASSERT_EQ(0, dmirror(fd, HMM_DMIRROR_SNAPSHOT, addr, npages, m, &c));
	ASSERT_EQ(npages, c.cpages);
	for (i = 0; i < npages; i++) {
		unsigned char w = all ? want[0] : want[i];

		if (m[i] == w)
			continue;
		if (bad++ < 8)
			TH_LOG("page %lu: snapshot 0x%02x (%s), expected 0x%02x (%s)",
			       i, m[i], snap_name(m[i]), w, snap_name(w));
	}
	free(m);
	ASSERT_EQ(0, bad);
}

static void snap_all(struct __test_metadata *_metadata, int fd, void *addr,
		     unsigned long npages, unsigned char want)
{
	snap_cmp(_metadata, fd, addr, npages, &want, true);
}

/* Snapshot byte of one page, or -errno. */
static int snap_one(int fd, void *addr)
{
	unsigned char m = 0xee;
	int ret = dmirror(fd, HMM_DMIRROR_SNAPSHOT, addr, 1, &m, NULL);

	return ret ? ret : m;
}

/* A page that lives in ordinary system memory (readable or writable). */
static bool snap_is_system(int m)
{
	return m == SNAP_R || m == SNAP_W;
}

/* ------------------------------------------------------------------ */
/* Huge pages                                                          */
/* ------------------------------------------------------------------ */

static unsigned long read_ulong(const char *path, unsigned long dflt)
{
	unsigned long v;
	FILE *f = fopen(path, "r");

	if (!f)
		return dflt;
	if (fscanf(f, "%lu", &v) != 1)
		v = dflt;
	fclose(f);
	return v;
}

/*
 * The PMD size. vm_util reads it from THP's sysfs, which a kernel without
 * THP lacks; hugetlb still maps at the PMD level there: 2 MiB on x86.
 */
static size_t pmd_size(void)
{
	uint64_t size = read_pmd_pagesize();

	return size ? size : 2UL << 20;
}

/* Size bit HMM reports for a mapping of @size bytes. */
static unsigned char order_bit(size_t size)
{
	if (size == pmd_size())
		return HMM_DMIRROR_PROT_PMD;
	if (size == (1UL << 30))
		return HMM_DMIRROR_PROT_PUD;
	return 0;
}

/*
 * Field @key ("Rss") in kB of the mapping at @addr: vm_util.h has
 * check_huge_anon() for AnonHugePages but nothing for the others.
 */
static unsigned long smaps_kb(void *addr, const char *key)
{
	char line[256], fmt[64];
	unsigned long start, end, kb = 0;
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return 0;
	snprintf(fmt, sizeof(fmt), "%s: %%lu kB", key);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			if (in)
				break;
			in = start == (unsigned long)addr;
			continue;
		}
		if (in && sscanf(line, fmt, &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/*
 * One PMD-sized, PMD-aligned private anonymous mapping backed by a single
 * THP and filled with @seed, or NULL if the kernel will not provide a THP
 * (fault-time allocation and MADV_COLLAPSE both refused).
 */
static struct tbuf *tbuf_thp(size_t psize, uint32_t seed)
{
	size_t hp = pmd_size();
	struct tbuf *b = calloc(1, sizeof(*b));
	uintptr_t start;

	if (!b)
		return NULL;
	b->npages = hp / psize;
	b->size = hp;
	b->resv_size = 3 * hp;
	b->resv = mmap(NULL, b->resv_size, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b->resv == MAP_FAILED) {
		free(b);
		return NULL;
	}
	start = ((uintptr_t)b->resv + hp - 1) & ~(uintptr_t)(hp - 1);
	b->cpu = mmap((void *)start, hp, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	b->dev = malloc(hp);
	b->snap = malloc(b->npages);
	if (b->cpu == MAP_FAILED || !b->dev || !b->snap)
		goto fail;
	madvise(b->cpu, hp, MADV_HUGEPAGE);
	pattern_fill(b->cpu, hp, seed);
	if (!check_huge_anon(b->cpu, 1, hp)) {
		madvise(b->cpu, hp, MADV_COLLAPSE);
		if (!check_huge_anon(b->cpu, 1, hp))
			goto fail;
	}
	return b;
fail:
	tbuf_free(b);
	return NULL;
}

/*
 * The anonymous folio sizes of "mTHP" (Linux 6.8) each have a knob,
 * hugepages-<size>kB/enabled, that says whether a write fault may take a
 * folio of that size. A test that wants folios of one size sets that size
 * to "always" and every other size, the PMD size included, to "never";
 * what each knob held is put back by the fixture's teardown. The harness
 * of this kernel runs no teardown after a failed assertion, and none runs
 * after a timeout, so the knobs' old values are kept in memory shared by
 * every process of the program, and the next test's setup, or the end of
 * the program, puts back whatever a failed test left behind.
 */
#define THP_SYSFS_DIR		"/sys/kernel/mm/transparent_hugepage"
#define MTHP_MAX_KNOBS		16
#define MTHP_WORD		16

struct mthp_knobs {
	int n;				/* knobs saved, 0: none touched */
	unsigned long kb[MTHP_MAX_KNOBS];
	char was[MTHP_MAX_KNOBS][MTHP_WORD];
	unsigned long cur_kb;		/* folio size in use */
};

static struct mthp_knobs *mthp_saved;	/* MAP_SHARED, NULL if none */
static pid_t mthp_main;

static void __attribute__((constructor)) mthp_saved_init(void)
{
	void *p = mmap(NULL, sizeof(*mthp_saved), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	mthp_saved = p == MAP_FAILED ? NULL : p;
	mthp_main = getpid();
}

static void mthp_knob_path(char *path, size_t len, unsigned long kb)
{
	snprintf(path, len, THP_SYSFS_DIR "/hugepages-%lukB/enabled", kb);
}

/* The word in brackets of a knob (the value in force); 0 or -errno. */
static int knob_read(const char *path, char *word, size_t len)
{
	char buf[128], *open_b, *close_b;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n ? -errno : -EINVAL;
	buf[n] = '\0';
	open_b = strchr(buf, '[');
	close_b = open_b ? strchr(open_b, ']') : NULL;
	if (!close_b || (size_t)(close_b - open_b) >= len)
		return -EINVAL;
	memcpy(word, open_b + 1, close_b - open_b - 1);
	word[close_b - open_b - 1] = '\0';
	return 0;
}

/* Write @word to a sysfs or tracefs file, as ">" does; 0 or -errno. */
static int file_write(const char *path, const char *word)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, word, strlen(word));
	close(fd);
	return n == (ssize_t)strlen(word) ? 0 : n < 0 ? -errno : -EIO;
}

/* Put back every knob @k saved; the first error, or 0. */
static int mthp_restore(struct mthp_knobs *k)
{
	char path[128];
	int i, ret = 0, err;

	for (i = 0; i < k->n; i++) {
		mthp_knob_path(path, sizeof(path), k->kb[i]);
		err = file_write(path, k->was[i]);
		if (err && !ret)
			ret = err;
	}
	k->n = 0;
	k->cur_kb = 0;
	return ret;
}

static void __attribute__((destructor)) mthp_saved_fini(void)
{
	if (mthp_saved && mthp_saved->n && getpid() == mthp_main)
		mthp_restore(mthp_saved);
}

/*
 * Let write faults take anonymous folios of @kb KiB and of no other size
 * (small pages aside), saving what every size's knob held first. A kernel
 * without the knob of that size fails the test. The size is logged, for
 * the assertions of the mthp_* cases that do not name it.
 */
static void mthp_only(struct __test_metadata *_metadata, unsigned long kb)
{
	struct mthp_knobs *k = mthp_saved;
	char path[128];
	struct dirent *de;
	unsigned long size;
	bool found;
	int i, ret;
	DIR *dir;

	ASSERT_NE(NULL, k);
	if (k->cur_kb != kb)
		TH_LOG("%lu KiB folios", kb);
	mthp_knob_path(path, sizeof(path), kb);
	ASSERT_EQ(0, access(path, W_OK))
		TH_LOG("%s: %s (a kernel with THP has it)", path,
		       strerror(errno));
	if (!k->n) {
		dir = opendir(THP_SYSFS_DIR);
		ASSERT_NE(NULL, dir);
		while ((de = readdir(dir)) && k->n < MTHP_MAX_KNOBS) {
			if (sscanf(de->d_name, "hugepages-%lukB", &size) != 1)
				continue;
			mthp_knob_path(path, sizeof(path), size);
			if (knob_read(path, k->was[k->n], MTHP_WORD))
				continue;
			k->kb[k->n++] = size;
		}
		closedir(dir);
	}
	for (i = 0, found = false; i < k->n; i++) {
		mthp_knob_path(path, sizeof(path), k->kb[i]);
		ret = file_write(path, k->kb[i] == kb ? "always" : "never");
		ASSERT_EQ(0, ret)
			TH_LOG("%s: %s", path, strerror(-ret));
		found |= k->kb[i] == kb;
	}
	ASSERT_TRUE(found) TH_LOG("no knob for %lu KiB folios saved", kb);
	k->cur_kb = kb;
}

/* ------------------------------------------------------------------ */
/* Child processes                                                     */
/* ------------------------------------------------------------------ */

/*
 * Forked children never use ASSERT_* (it would unwind into the harness in
 * the wrong process); they report the failing line and exit non-zero.
 * Their message is a TAP diagnostic ("# "), as TH_LOG()'s are, so that it
 * is kept with the failure the parent then reports.
 */
#define CHILD_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "# child: line %d: %s\n", __LINE__, #cond); \
		_exit(1);						\
	}								\
} while (0)

/*
 * In a child: the buffer holds pattern @seed, takes pattern @next when
 * written, and the child exits 0.
 */
static void child_rewrite_exit(struct tbuf *b, uint32_t seed, uint32_t next)
{
	CHILD_CHECK(pattern_check(b->cpu, b->size, seed) < 0);
	pattern_fill(b->cpu, b->size, next);
	CHILD_CHECK(pattern_check(b->cpu, b->size, next) < 0);
	_exit(0);
}

/* Exit status of @pid, or 128 + signal number. */
static int child_wait(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Swap and memory accounting                                          */
/* ------------------------------------------------------------------ */

#define PAGEMAP_PATH		"/proc/self/pagemap"
#define PM_SWAP_TYPE		0x1fULL
#define CGROUP_ROOT		"/sys/fs/cgroup"

/*
 * How many of the @npages pages at @addr are in swap, and which (@in_swap,
 * if given), or -errno. Pagemap sets PM_SWAP for every swap-format entry
 * (so vm_util's pagemap_is_swapped() counts device pages too); a page in
 * swap is one whose swap type (bits 0-4, shown to root) is 0, the guest's
 * only swap device: migration and device-private entries have types beyond
 * the last swap file.
 */
static long pagemap_swapped(void *addr, unsigned long npages, size_t ps,
			    bool *in_swap)
{
	uint64_t *pm = malloc(npages * sizeof(*pm));
	size_t bytes = npages * sizeof(*pm);
	unsigned long i;
	long n = 0;
	int fd;

	if (!pm)
		return -ENOMEM;
	fd = open(PAGEMAP_PATH, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, pm, bytes, (uintptr_t)addr / ps * sizeof(*pm)) !=
		      (ssize_t)bytes)
		n = -EIO;
	for (i = 0; n >= 0 && i < npages; i++) {
		bool swapped = (pm[i] & PM_SWAP) && !(pm[i] & PM_SWAP_TYPE);

		if (in_swap)
			in_swap[i] = swapped;
		n += swapped;
	}
	if (fd >= 0)
		close(fd);
	free(pm);
	return n;
}

/*
 * The number that follows @key at the start of a line of @path (the
 * key's own ':' or blanks skipped), or the first number of the file if
 * @key is NULL; -1 if there is none. The file is read with read() into a
 * static buffer, so that reading a counter allocates nothing that would
 * change it (the buffer itself is touched by the first call, which each
 * test makes before it measures).
 */
static long file_value(const char *path, const char *key)
{
	static char buf[16384];
	size_t klen = key ? strlen(key) : 0;
	ssize_t n, len = 0;
	char *line;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while (len < (ssize_t)sizeof(buf) - 1 &&
	       (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += n;
	close(fd);
	buf[len] = '\0';
	for (line = buf; line && *line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (!key)
			return strtol(line, NULL, 10);
		if (!strncmp(line, key, klen) && line[klen] &&
		    strchr(": \t", line[klen]))
			return strtol(line + klen + 1, NULL, 10);
	}
	return -1;
}

/*
 * RssAnon of this process, in pages. vm_util's rss_anon() reads it with
 * stdio: the first call allocates the FILE and its buffer, later calls
 * reuse them, so a test that calls it once before it measures sees only
 * its own pages come and go.
 */
static long rss_anon_pages(size_t ps)
{
	return (long)(rss_anon() * 1024 / ps);
}

/*
 * Run the calling thread on @cpu only; false when that CPU is not there
 * (on a machine with a single CPU, for instance).
 */
static bool run_on_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) == 0;
}

/* Let the calling thread run on every CPU again. */
static void run_anywhere(void)
{
	cpu_set_t set;
	long i, n = sysconf(_SC_NPROCESSORS_CONF);

	CPU_ZERO(&set);
	for (i = 0; i < n && i < CPU_SETSIZE; i++)
		CPU_SET(i, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/*
 * In a child: exit 1 with a message unless @got is @want give or take
 * @slack.
 */
static void child_expect(const char *what, long got, long want, long slack)
{
	if (got >= want - slack && got <= want + slack)
		return;
	fprintf(stderr, "# child: %s: %ld, expected %ld (+/- %ld)\n", what, got,
		want, slack);
	_exit(1);
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

FIXTURE(hmm)
{
	int fd;		/* the device under test */
	int peer;	/* another device of the same kind */
	size_t ps;
	bool stats;	/* HMM_DMIRROR_STATS available */
};

/*
 * A device kind, and what the cases expect of it, so that a case asserts
 * a property (large folios move whole; the CPU uses device memory where
 * it is) rather than asking which kind it runs on.
 */
FIXTURE_VARIANT(hmm)
{
	int unit;
	int peer_unit;
	bool coherent;		/* DEVICE_COHERENT: needs the RAM windows */
	bool large_folios;	/* a large folio moves whole, both ways */
	bool cpu_in_place;	/* a CPU access leaves device memory in place */
};

/*
 * Helpers below take the fixture and variant as "struct _test_data_hmm" and
 * "struct _fixture_variant_hmm", which is what FIXTURE_DATA(hmm) and
 * FIXTURE_VARIANT(hmm) expand to: spelled as macros in a parameter list
 * they read to checkpatch like a multiplication.
 */

FIXTURE_VARIANT_ADD(hmm, private)
{
	.unit = 0,
	.peer_unit = 1,
	.coherent = false,
	.large_folios = true,
	.cpu_in_place = false,
};

/* no large folios in coherent memory: see hmm.rst */
FIXTURE_VARIANT_ADD(hmm, coherent)
{
	.unit = 2,
	.peer_unit = 3,
	.coherent = true,
	.large_folios = false,
	.cpu_in_place = true,
};

FIXTURE_SETUP(hmm)
{
	int avail;

	self->ps = sysconf(_SC_PAGESIZE);
	self->fd = -1;
	self->peer = -1;
	/*
	 * test_hmm.sh and run_vmtests.sh load the driver without coherent
	 * windows unless told their addresses: no coherent device to test.
	 */
	if (variant->coherent && !coherent_present())
		SKIP(return, "no coherent devices (load test_hmm with spm_addr_dev0/1)");
	self->fd = dev_open(variant->unit);
	ASSERT_LE(0, self->fd)
		TH_LOG("open " DEV_PATH_FMT ": %s (is test_hmm loaded with both coherent windows?)",
		       variant->unit, strerror(errno));
	self->peer = dev_open(variant->peer_unit);
	ASSERT_LE(0, self->peer)
		TH_LOG("open " DEV_PATH_FMT ": %s", variant->peer_unit,
		       strerror(errno));
	/* knobs a failed mthp_* case left set */
	if (mthp_saved && mthp_saved->n) {
		avail = mthp_restore(mthp_saved);
		ASSERT_EQ(0, avail)
			TH_LOG("restoring the mTHP knobs: %s",
			       strerror(-avail));
	}
	avail = stats_probe(self->fd);
	ASSERT_LE(0, avail)
		TH_LOG("HMM_DMIRROR_STATS: %s", strerror(-avail));
	self->stats = avail;
}

FIXTURE_TEARDOWN(hmm)
{
	int ret = mthp_saved ? mthp_restore(mthp_saved) : 0;

	EXPECT_EQ(0, ret)
		TH_LOG("restoring the mTHP knobs: %s", strerror(-ret));
	close(self->fd);
	close(self->peer);
}

/* Snapshot byte of a page migrated to this device (@w: writable). */
static unsigned char snap_local(const struct _fixture_variant_hmm *v, bool w)
{
	return (v->coherent ? HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL :
			      HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL) |
	       (w ? SNAP_W : SNAP_R);
}

/*
 * Snapshot byte of a page that was on this device after the CPU used it
 * (@w: wrote it): still on the device if the CPU uses it in place, back
 * in system memory if not.
 */
static unsigned char snap_cpu(const struct _fixture_variant_hmm *v, bool w)
{
	if (v->cpu_in_place)
		return snap_local(v, w);
	return w ? SNAP_W : SNAP_R;
}

/*
 * Snapshot byte of a page migrated to the peer, as seen from this device.
 * A coherent page is mapped by the CPU and reported as remote device
 * memory; a private page of another device is not mapped at all and,
 * since a snapshot never faults, it reads as not present.
 */
static unsigned char snap_remote(const struct _fixture_variant_hmm *v, bool w)
{
	if (!v->coherent)
		return SNAP_NONE;
	return HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE | (w ? SNAP_W : SNAP_R);
}

/* Migrate a fresh buffer to the device and back: the device still works. */
static void device_sane(struct __test_metadata *_metadata, int fd,
			size_t ps)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(ps, 4, PROT_READ | PROT_WRITE);

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 0x5a5e);
	ASSERT_EQ(0, tb_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(4, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 0x5a5e));
	ASSERT_EQ(0, tb_cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 0x5a5e));
	tbuf_free(b);
}

#define RW	(PROT_READ | PROT_WRITE)

/* ------------------------------------------------------------------ */
/* Devices and open files                                              */
/* ------------------------------------------------------------------ */

/*
 * All four nodes exist and each is the kind the suite assumes: a page
 * migrated to units 0 and 1 is DEVICE_PRIVATE, to units 2 and 3
 * DEVICE_COHERENT.
 */
TEST(device_nodes_and_kinds)
{
	size_t ps = sysconf(_SC_PAGESIZE);
	int unit;

	if (!coherent_present())
		SKIP(return, "no coherent devices (load test_hmm with spm_addr_dev0/1)");
	for (unit = 0; unit < 4; unit++) {
		unsigned char want = unit < 2 ?
			HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL :
			HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL;
		struct hmm_dmirror_cmd c;
		struct stat st;
		struct tbuf *b;
		int fd = dev_open(unit);

		ASSERT_LE(0, fd)
			TH_LOG("open " DEV_PATH_FMT ": %s", unit,
			       strerror(errno));
		ASSERT_EQ(0, fstat(fd, &st));
		ASSERT_TRUE(S_ISCHR(st.st_mode));

		b = tbuf_anon(ps, 1, RW);
		ASSERT_NE(NULL, b);
		pattern_fill(b->cpu, ps, unit);
		ASSERT_EQ(0, tb_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
		ASSERT_EQ(1, c.cpages);
		ASSERT_EQ(want | SNAP_W, snap_one(fd, b->cpu))
			TH_LOG("unit %d", unit);
		ASSERT_EQ(0, tb_cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
		ASSERT_EQ(1, c.cpages);
		ASSERT_EQ(SNAP_W, snap_one(fd, b->cpu));
		ASSERT_EQ(-1, pattern_check(b->cpu, ps, unit));
		tbuf_free(b);
		ASSERT_EQ(0, close(fd));
	}
}

/*
 * Opening and closing is cheap and repeatable, and every open file is its
 * own mirror: closing one leaves another's mirror of the same range intact
 * (it reads without faulting again).
 */
TEST_F(hmm, open_close)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b;
	int i, fd;

	for (i = 0; i < 32; i++) {
		fd = dev_open(variant->unit);
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, close(fd));
	}

	b = tbuf_anon(self->ps, 8, RW);
	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 1);

	fd = dev_open(variant->unit);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, tb_cmd(fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(8, c.cpages);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(1, c.faults);
	ASSERT_EQ(0, close(fd));

	memset(b->dev, 0, b->size);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(8, c.cpages);
	ASSERT_EQ(0, c.faults);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 1));
	tbuf_free(b);
}

/* ------------------------------------------------------------------ */
/* Reading and writing through the mirror                              */
/* ------------------------------------------------------------------ */

/*
 * The device reads what the CPU wrote. The first read has to fault the
 * range into the mirror, a second one is served from the mirror, and a
 * later CPU store is seen by the next device read. 97 pages cross the
 * driver's 64-page batches unevenly.
 */
TEST_F(hmm, read_populated)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 97, RW);

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 2);

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(1, c.faults);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 2));

	memset(b->dev, 0, b->size);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(0, c.faults);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 2));

	pattern_fill(b->cpu, b->size, 3);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 3));

	/* A sub-range on its own, starting mid-buffer. */
	memset(b->dev, 0, b->size);
	ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_READ, b, self->ps,
				  60, 7, &c));
	ASSERT_EQ(7, c.cpages);
	ASSERT_EQ(-1, pattern_check_from(b->dev + 60 * self->ps,
					 7 * self->ps, 3, 60 * self->ps));

	snap_all(_metadata, self->fd, b->cpu, b->npages, SNAP_W);
	tbuf_free(b);
}

/*
 * Reading memory nobody touched faults in the shared zero page (the device
 * sees zeroes and the snapshot says zero page, read-only); writing such
 * memory through the device allocates real pages the CPU then reads.
 */
TEST_F(hmm, unpopulated_memory)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);

	ASSERT_NE(NULL, b);
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_NONE);

	memset(b->dev, 0xa5, b->size);
	ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_READ, b, self->ps,
				  0, 8, &c));
	ASSERT_EQ(8, c.cpages);
	ASSERT_EQ(1, c.faults);
	ASSERT_EQ(-1, bytes_check(b->dev, 8 * self->ps, 0));
	snap_all(_metadata, self->fd, b->cpu, 8, SNAP_ZERO_R);

	pattern_fill_from(b->dev + 8 * self->ps, 8 * self->ps, 4,
			  8 * self->ps);
	ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_WRITE, b, self->ps,
				  8, 8, &c));
	ASSERT_EQ(8, c.cpages);
	ASSERT_EQ(1, c.faults);
	ASSERT_EQ(-1, pattern_check_from(b->cpu + 8 * self->ps,
					 8 * self->ps, 4, 8 * self->ps));
	snap_all(_metadata, self->fd, tb_page(b, self->ps, 8), 8, SNAP_W);

	/* Writing over the zero pages replaces them. */
	pattern_fill_from(b->dev, 8 * self->ps, 4, 0);
	ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_WRITE, b, self->ps,
				  0, 8, &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 4));
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_W);
	tbuf_free(b);
}

/*
 * The device writes, the CPU reads; the data lands in the right pages and
 * a write through one device is read back through another.
 */
TEST_F(hmm, write_populated)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 97, RW);

	ASSERT_NE(NULL, b);
	memset(b->cpu, 0x11, b->size);
	pattern_fill(b->dev, b->size, 5);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 5));

	ASSERT_EQ(0, dev_read_check(self->peer, b, &c, 5));
	tbuf_free(b);
}

/*
 * Read-only memory: the device may read it but a device write fails with
 * EPERM and changes nothing; once the CPU mapping is writable again the
 * same write goes through. Holds for populated and unpopulated pages.
 */
TEST_F(hmm, read_only_memory)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, 8 * self->ps, 6);
	ASSERT_EQ(0, mprotect(b->cpu, b->size, PROT_READ));

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(16, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, 8 * self->ps, 6));
	ASSERT_EQ(-1, bytes_check(b->dev + 8 * self->ps, 8 * self->ps, 0));
	snap_all(_metadata, self->fd, b->cpu, 8, SNAP_R);
	snap_all(_metadata, self->fd, tb_page(b, self->ps, 8), 8,
		 SNAP_ZERO_R);

	pattern_fill(b->dev, b->size, 7);
	ASSERT_EQ(-EPERM, tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));
	ASSERT_EQ(-EPERM, tb_cmd_range(self->fd, HMM_DMIRROR_WRITE, b,
				       self->ps, 12, 1, &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, 8 * self->ps, 6));
	ASSERT_EQ(-1, bytes_check(b->cpu + 8 * self->ps, 8 * self->ps, 0));

	ASSERT_EQ(0, mprotect(b->cpu, b->size, RW));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));
	ASSERT_EQ(16, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 7));
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_W);
	tbuf_free(b);
}

/*
 * PROT_NONE memory cannot be touched by the device in any way: reads and
 * writes fault (EFAULT), migration is refused (EINVAL), exclusive access
 * faults too and a snapshot reports an error for each page.
 */
TEST_F(hmm, prot_none_memory)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 8, RW);

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 8);
	ASSERT_EQ(0, mprotect(b->cpu, b->size, PROT_NONE));

	ASSERT_EQ(-EFAULT, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(-EFAULT, tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));
	ASSERT_EQ(-EINVAL, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b,
				  &c));
	/* The range is faulted in first (6.12 reports the grab: EBUSY). */
	ASSERT_EQ(-EFAULT, tb_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, b, &c));
	snap_all(_metadata, self->fd, b->cpu, 8, SNAP_ERR);

	ASSERT_EQ(0, mprotect(b->cpu, b->size, PROT_READ));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 8));
	tbuf_free(b);
}

/*
 * mprotect() on a mirrored range takes effect for the device at once:
 * read-only stops device writes (EPERM) but not reads, PROT_NONE stops
 * both, and restoring read-write lets a device write through again.
 */
TEST_F(hmm, mprotect_while_mirrored)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 9);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));

	ASSERT_EQ(0, mprotect(b->cpu, b->size, PROT_READ));
	pattern_fill(b->dev, b->size, 10);
	ASSERT_EQ(-EPERM, tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 9));
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_R);

	ASSERT_EQ(0, mprotect(b->cpu + 8 * self->ps, 8 * self->ps,
			      PROT_NONE));
	ASSERT_EQ(-EFAULT, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_READ, b, self->ps,
				  0, 8, &c));
	snap_all(_metadata, self->fd, tb_page(b, self->ps, 8), 8, SNAP_ERR);

	ASSERT_EQ(0, mprotect(b->cpu, b->size, RW));
	pattern_fill(b->dev, b->size, 10);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 10));
	tbuf_free(b);
}

/*
 * A range mapped by mmap() of the device node itself (the driver inserts
 * zeroed pages): the device sees ordinary read-only pages of zeroes.
 */
TEST_F(hmm, mmap_of_device_node)
{
	struct hmm_dmirror_cmd c;
	unsigned long npages = 4;
	size_t size = npages * self->ps;
	char *io = malloc(size);
	char *p;

	ASSERT_NE(NULL, io);
	p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, self->fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	snap_all(_metadata, self->fd, p, npages, SNAP_R);
	memset(io, 0x77, size);
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_READ, p, npages, io, &c));
	ASSERT_EQ(npages, c.cpages);
	ASSERT_EQ(-1, bytes_check(io, size, 0));
	ASSERT_EQ(-1, bytes_check(p, size, 0));
	ASSERT_EQ(0, munmap(p, size));
	free(io);
}

/* ------------------------------------------------------------------ */
/* Huge pages                                                          */
/* ------------------------------------------------------------------ */

/*
 * A THP is reported with the PMD order bit on every one of its pages, for
 * reads and writes, and device writes go into it without splitting it.
 */
TEST_F(hmm, thp_mirror)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_thp(self->ps, 11);

	if (!b)
		SKIP(return, "no THP available (THP disabled or no memory)");
	snap_all(_metadata, self->fd, b->cpu, b->npages,
		 SNAP_W | HMM_DMIRROR_PROT_PMD);

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 11));

	pattern_fill(b->dev, b->size, 12);
	ASSERT_EQ(0, tb_cmd(self->peer, HMM_DMIRROR_WRITE, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 12));
	ASSERT_TRUE(check_huge_anon(b->cpu, 1, b->size));
	snap_all(_metadata, self->peer, b->cpu, b->npages,
		 SNAP_W | HMM_DMIRROR_PROT_PMD);
	tbuf_free(b);
}

/*
 * Folios of @order that moved between two reads of the counters, into the
 * device (@in) or out of it.
 */
static long moved_folios(const struct hmm_dmirror_stats *s0,
			 const struct hmm_dmirror_stats *s1, unsigned int order,
			 bool in)
{
	return in ? (long)(s1->folios_to_device[order] -
			   s0->folios_to_device[order]) :
		    (long)(s1->folios_to_system[order] -
			   s0->folios_to_system[order]);
}

/* Order of a PMD-sized folio. */
static unsigned int pmd_order(size_t ps)
{
	return __builtin_ctzl(pmd_size() / ps);
}

/*
 * The order bit a snapshot shows for a THP that went to the device and
 * back (or for the device folio it became): a private device moves it
 * whole, and the device maps a large folio whole even where PTEs map it;
 * a coherent device moves it page by page.
 */
static unsigned char thp_snap_bit(const struct _fixture_variant_hmm *v)
{
	return v->large_folios ? HMM_DMIRROR_PROT_PMD : 0;
}

/*
 * A THP migrates to the device and comes back with its data.  A private
 * device takes it whole, into one huge device folio, and gives it back as
 * one THP; a coherent device has no huge folios and takes it page by page.
 */
TEST_F(hmm, thp_migrate)
{
	unsigned int order = pmd_order(self->ps);
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_thp(self->ps, 13);

	if (!b)
		SKIP(return, "no THP available (THP disabled or no memory)");
	stats_get(_metadata, self->fd, self->stats, &s0);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 13));
	snap_all(_metadata, self->fd, b->cpu, b->npages,
		 snap_local(variant, true) | thp_snap_bit(variant));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats) {
		ASSERT_EQ(b->npages, (s1.to_device - s0.to_device));
		ASSERT_EQ(b->npages, (s1.pages_in_use - s0.pages_in_use));
		ASSERT_EQ(variant->large_folios ? 1 : 0,
			  moved_folios(&s0, &s1, order, true));
		ASSERT_EQ(variant->large_folios ? 0 : b->npages,
			  moved_folios(&s0, &s1, 0, true));
	}
	s0 = s1;

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	/* back as a THP mapped by a PMD again */
	ASSERT_TRUE(check_huge_anon(b->cpu, variant->large_folios, pmd_size()));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 13));
	snap_all(_metadata, self->fd, b->cpu, b->npages,
		 SNAP_W | thp_snap_bit(variant));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats) {
		ASSERT_EQ(variant->large_folios ? 1 : 0,
			  moved_folios(&s0, &s1, order, false));
		ASSERT_EQ(variant->large_folios ? 0 : b->npages,
			  moved_folios(&s0, &s1, 0, false));
		ASSERT_EQ(s0.pages_in_use - b->npages, s1.pages_in_use);
	}
	tbuf_free(b);
}

/* One counter of /proc/vmstat; -1 when it has none of that name. */
static long long vmstat_read(const char *want)
{
	unsigned long long val;
	long long ret = -1;
	char name[64];
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (ret < 0 && fscanf(f, "%63s %llu", name, &val) == 2)
		if (!strcmp(name, want))
			ret = val;
	fclose(f);
	return ret;
}

/*
 * Collecting a THP takes all its mappings away at once: it is never seen
 * partly mapped on the way, so it is not queued for a deferred split (which
 * would flag it as partly mapped for good) whether it moves whole, as on a
 * private unit, or is split first, as on a coherent one.
 */
TEST_F(hmm, thp_collect_not_deferred)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_thp(self->ps, 176);
	long long d0, d1;

	ASSERT_NE(NULL, b);
	d0 = vmstat_read("thp_deferred_split_page");
	ASSERT_LE(0, d0);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	d1 = vmstat_read("thp_deferred_split_page");
	ASSERT_EQ(d0, d1);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 176));
	tbuf_free(b);

	/* The counter is live: a THP with one page unmapped is queued. */
	b = tbuf_thp(self->ps, 177);
	ASSERT_NE(NULL, b);
	ASSERT_EQ(0, munmap(tb_page(b, self->ps, 1), self->ps));
	ASSERT_EQ(d1 + 1, vmstat_read("thp_deferred_split_page"));
	tbuf_free(b);
}

/*
 * @n PMD-sized, PMD-aligned private anonymous huge-page-enabled slots,
 * untouched (nothing mapped yet).
 */
static struct tbuf *tbuf_huge_slots(size_t psize, unsigned long n)
{
	size_t hp = pmd_size();
	struct tbuf *b = calloc(1, sizeof(*b));
	uintptr_t start;

	if (!b)
		return NULL;
	b->npages = n * hp / psize;
	b->size = n * hp;
	b->resv_size = b->size + 2 * hp;
	b->resv = mmap(NULL, b->resv_size, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b->resv == MAP_FAILED) {
		free(b);
		return NULL;
	}
	start = ((uintptr_t)b->resv + hp - 1) & ~(uintptr_t)(hp - 1);
	b->cpu = mmap((void *)start, b->size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	b->dev = malloc(b->size);
	b->snap = malloc(b->npages);
	if (b->cpu == MAP_FAILED || !b->dev || !b->snap) {
		tbuf_free(b);
		return NULL;
	}
	madvise(b->cpu, b->size, MADV_HUGEPAGE);
	return b;
}

/*
 * Counters, @b's THP moved to the device; @b keeps pattern @seed.  When it
 * became one huge device folio (@pmd), one device-private PMD entry maps
 * it, which smaps counts as an anonymous huge page; mapped page by page,
 * it counts none.
 */
static void thp_to_device(struct __test_metadata *_metadata, int fd,
			  bool have, struct tbuf *b, uint32_t seed,
			  struct hmm_dmirror_stats *st, bool pmd)
{
	struct hmm_dmirror_cmd c;

	ASSERT_EQ(0, tb_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, seed));
	ASSERT_EQ(pmd ? pmd_size() >> 10 : 0,
		  smaps_kb(b->cpu, "AnonHugePages"));
	stats_get(_metadata, fd, have, st);
}

/*
 * A CPU fault on one page of a device THP brings the whole folio back, as
 * one THP, in one fault.
 */
TEST_F(hmm, thp_device_folio_cpu_fault)
{
	unsigned int order = pmd_order(self->ps);
	struct hmm_dmirror_stats s0, s1;
	struct tbuf *b = tbuf_thp(self->ps, 171);

	ASSERT_NE(NULL, b);
	thp_to_device(_metadata, self->fd, self->stats, b, 171, &s0,
		      variant->large_folios);
	/* one read in the middle of the folio */
	ASSERT_EQ(-1, pattern_check_from(tb_page(b, self->ps, 100),
					 self->ps, 171, 100 * self->ps));
	ASSERT_TRUE(check_huge_anon(b->cpu, variant->large_folios, pmd_size()));
	if (!variant->cpu_in_place)
		snap_all(_metadata, self->fd, b->cpu, b->npages,
			 SNAP_W | HMM_DMIRROR_PROT_PMD);
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats && !variant->cpu_in_place) {
		ASSERT_EQ(1, s1.faults - s0.faults);
		ASSERT_EQ(1, moved_folios(&s0, &s1, order, false));
		ASSERT_EQ(b->npages, s1.to_system - s0.to_system);
		ASSERT_EQ(s0.pages_in_use - b->npages, s1.pages_in_use);
	}
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 171));
	tbuf_free(b);
}

/*
 * Move one empty huge slot to the device, with the driver's device flags
 * set to @flags for the call, and check what the device got: zeroes, in
 * one huge device folio (a private unit without HMM_DMIRROR_FLAG_FAIL_ALLOC)
 * or in small pages each mapped by its own entry; every page in use.
 */
static void empty_slot_to_device(struct __test_metadata *_metadata,
				 struct _test_data_hmm *self,
				 const struct _fixture_variant_hmm *variant,
				 struct tbuf *b, uint64_t flags)
{
	bool huge = variant->large_folios && !flags;
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;

	memset(b->dev, 0x5a, b->size);
	ASSERT_EQ(0, set_flags(self->fd, flags));
	stats_get(_metadata, self->fd, self->stats, &s0);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	stats_get(_metadata, self->fd, self->stats, &s1);
	ASSERT_EQ(0, set_flags(self->fd, 0));
	ASSERT_EQ(-1, bytes_check(b->dev, b->size, 0));
	snap_all(_metadata, self->fd, b->cpu, b->npages,
		 snap_local(variant, true) | (huge ? thp_snap_bit(variant) : 0));
	if (self->stats) {
		ASSERT_EQ(huge ? 1 : 0,
			  moved_folios(&s0, &s1, pmd_order(self->ps), true));
		ASSERT_EQ(b->npages, s1.pages_in_use - s0.pages_in_use);
	}
}

/*
 * An empty huge slot is filled with one huge device folio, reads as
 * zeroes on the device and, back on the CPU, as zeroes.
 */
TEST_F(hmm, thp_empty_slot)
{
	struct tbuf *b = tbuf_huge_slots(self->ps, 1);

	ASSERT_NE(NULL, b);
	empty_slot_to_device(_metadata, self, variant, b, 0);
	ASSERT_EQ(-1, bytes_check(b->cpu, b->size, 0));
	pattern_fill(b->cpu, b->size, 172);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 172));
	tbuf_free(b);
}

/*
 * An empty huge slot with HMM_DMIRROR_FLAG_FAIL_ALLOC: the driver answers
 * the compound empty slot with one small device page per page, and the
 * core fills the slot page by page, each page mapped and charged once.
 * Every page moves, reads as zeroes, and comes back.
 */
TEST_F(hmm, thp_empty_slot_fail_alloc)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_huge_slots(self->ps, 1);

	ASSERT_NE(NULL, b);
	empty_slot_to_device(_metadata, self, variant, b,
			     HMM_DMIRROR_FLAG_FAIL_ALLOC);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(-1, bytes_check(b->cpu, b->size, 0));
	pattern_fill(b->cpu, b->size, 175);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 175));
	tbuf_free(b);
}

/*
 * HMM_DMIRROR_FLAG_FAIL_ALLOC: no huge folio on the way in, none on the
 * way out; everything still moves, page by page (the core splits the THP,
 * unmapped, on the way in and the device folio on the way out).
 */
TEST_F(hmm, thp_fail_alloc)
{
	unsigned int order = pmd_order(self->ps);
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_thp(self->ps, 173);

	ASSERT_NE(NULL, b);
	/* in with FAIL_ALLOC: small device pages */
	ASSERT_EQ(0, set_flags(self->fd, HMM_DMIRROR_FLAG_FAIL_ALLOC));
	stats_get(_metadata, self->fd, self->stats, &s0);
	thp_to_device(_metadata, self->fd, self->stats, b, 173, &s1, false);
	if (self->stats) {
		ASSERT_EQ(0, moved_folios(&s0, &s1, order, true));
		ASSERT_EQ(b->npages, moved_folios(&s0, &s1, 0, true));
	}
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	/* back as small pages too: no THP could be had */
	ASSERT_EQ(0, smaps_kb(b->cpu, "AnonHugePages"));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 173));
	tbuf_free(b);

	/* in whole, out with FAIL_ALLOC: the device folio is split */
	ASSERT_EQ(0, set_flags(self->fd, 0));
	b = tbuf_thp(self->ps, 174);
	ASSERT_NE(NULL, b);
	thp_to_device(_metadata, self->fd, self->stats, b, 174, &s0,
		      variant->large_folios);
	ASSERT_EQ(0, set_flags(self->fd, HMM_DMIRROR_FLAG_FAIL_ALLOC));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	stats_get(_metadata, self->fd, self->stats, &s1);
	ASSERT_EQ(0, set_flags(self->fd, 0));
	if (self->stats) {
		ASSERT_EQ(0, moved_folios(&s0, &s1, order, false));
		ASSERT_EQ(b->npages, moved_folios(&s0, &s1, 0, false));
		ASSERT_EQ(s0.pages_in_use - b->npages, s1.pages_in_use);
	}
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 174));
	snap_all(_metadata, self->fd, b->cpu, b->npages, SNAP_W);
	tbuf_free(b);
}

/*
 * Part of a device THP unmapped: the rest keeps its data, a CPU fault on
 * it splits a private device folio and brings back the page touched, and
 * the device memory of the unmapped part is freed.
 */
TEST_F(hmm, thp_device_folio_partial_munmap)
{
	size_t half;
	struct hmm_dmirror_stats s0, s1;
	struct tbuf *b = tbuf_thp(self->ps, 175);
	unsigned long i;

	ASSERT_NE(NULL, b);
	half = b->size / 2;
	thp_to_device(_metadata, self->fd, self->stats, b, 175, &s0,
		      variant->large_folios);
	ASSERT_EQ(0, munmap(b->cpu, half));
	for (i = b->npages / 2; i < b->npages; i++)
		ASSERT_EQ(-1, pattern_check_from(tb_page(b, self->ps, i),
						 self->ps, 175, i * self->ps));
	/* coherent pages are read where they are */
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats)
		ASSERT_EQ(s0.pages_in_use -
			  (variant->cpu_in_place ? b->npages / 2 : b->npages),
			  s1.pages_in_use);
	snap_all(_metadata, self->fd, b->cpu + half, b->npages / 2,
		 snap_cpu(variant, true));
	tbuf_free(b);
}

/*
 * mprotect() of part of a device THP: the data stays, reads work on both
 * parts and the read-only part is mirrored read-only.
 */
TEST_F(hmm, thp_device_folio_mprotect)
{
	struct hmm_dmirror_stats s0;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_thp(self->ps, 176);
	size_t half;

	ASSERT_NE(NULL, b);
	half = b->size / 2;
	thp_to_device(_metadata, self->fd, self->stats, b, 176, &s0,
		      variant->large_folios);
	ASSERT_EQ(0, mprotect(b->cpu, half, PROT_READ));
	ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_SNAPSHOT, b, self->ps,
				  0, 1, &c));
	ASSERT_EQ(snap_local(variant, false), b->snap[0]);
	ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_SNAPSHOT, b, self->ps,
				  b->npages - 1, 1, &c));
	ASSERT_EQ(snap_local(variant, true), b->snap[b->npages - 1]);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 176));
	tbuf_free(b);
}

/*
 * fork() with a device THP: both sides read the data, then each writes
 * its own, and neither sees the other's.
 */
TEST_F(hmm, thp_device_folio_fork)
{
	struct hmm_dmirror_stats s0;
	struct tbuf *b = tbuf_thp(self->ps, 177);
	pid_t pid;

	ASSERT_NE(NULL, b);
	thp_to_device(_metadata, self->fd, self->stats, b, 177, &s0,
		      variant->large_folios);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		child_rewrite_exit(b, 177, 178);
	ASSERT_EQ(0, child_wait(pid));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 177));
	pattern_fill(b->cpu, b->size, 179);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 179));
	tbuf_free(b);
}

/*
 * A device THP evicted from the device side (HMM_DMIRROR_RELEASE) comes
 * back whole into a THP, data intact.
 */
TEST_F(hmm, thp_device_folio_evicted)
{
	unsigned int order = pmd_order(self->ps);
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_thp(self->ps, 180);

	ASSERT_NE(NULL, b);
	thp_to_device(_metadata, self->fd, self->stats, b, 180, &s0,
		      variant->large_folios);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_RELEASE, b, &c));
	ASSERT_TRUE(check_huge_anon(b->cpu, variant->large_folios, pmd_size()));
	snap_all(_metadata, self->fd, b->cpu, b->npages,
		 SNAP_W | thp_snap_bit(variant));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats && variant->large_folios)
		ASSERT_EQ(1, moved_folios(&s0, &s1, order, false));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 180));
	tbuf_free(b);
}

/*
 * A range mixing a THP, small pages, untouched pages and a whole empty
 * huge slot moves in one command and comes back intact.
 */
TEST_F(hmm, thp_mixed_range)
{
	struct tbuf *b = tbuf_huge_slots(self->ps, 3);
	struct hmm_dmirror_cmd c;
	unsigned long i, per = pmd_size() / self->ps;
	char *small;

	ASSERT_NE(NULL, b);
	small = b->cpu + pmd_size();
	/* slot 0: a THP; slot 1: every other page, small; slot 2: empty */
	pattern_fill(b->cpu, pmd_size(), 181);
	ASSERT_EQ(0, madvise(small, pmd_size(), MADV_NOHUGEPAGE));
	for (i = 0; i < per; i += 2)
		small[i * self->ps] = (char)i;
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	/* the THP and the empty slot became huge device folios */
	snap_all(_metadata, self->fd, b->cpu, per,
		 snap_local(variant, true) | thp_snap_bit(variant));
	snap_all(_metadata, self->fd, small, per, snap_local(variant, true));
	snap_all(_metadata, self->fd, small + pmd_size(), per,
		 snap_local(variant, true) | thp_snap_bit(variant));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, pmd_size(), 181));
	for (i = 0; i < per; i++)
		ASSERT_EQ(i % 2 ? 0 : (char)i, small[i * self->ps]);
	ASSERT_EQ(-1, bytes_check(b->cpu + 2 * pmd_size(), pmd_size(), 0));
	tbuf_free(b);
}

/*
 * MADV_DONTNEED of part of a device THP: that part reads as zeroes, the
 * rest keeps its data, and once the rest has come back (the device folio
 * split) none of the device memory stays in use.
 */
TEST_F(hmm, thp_device_folio_dontneed)
{
	struct hmm_dmirror_stats s0, s1;
	struct tbuf *b = tbuf_thp(self->ps, 182);
	size_t quarter;

	ASSERT_NE(NULL, b);
	quarter = b->size / 4;
	thp_to_device(_metadata, self->fd, self->stats, b, 182, &s0,
		      variant->large_folios);
	ASSERT_EQ(0, madvise(b->cpu, quarter, MADV_DONTNEED));
	ASSERT_EQ(-1, bytes_check(b->cpu, quarter, 0));
	ASSERT_EQ(-1, pattern_check_from(b->cpu + quarter, b->size - quarter,
					 182, quarter));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats && variant->large_folios)
		ASSERT_EQ(s0.pages_in_use - b->npages, s1.pages_in_use);
	tbuf_free(b);
}

/*
 * mremap() of a device THP, to an aligned place and to one that is not:
 * the data follows, and CPU faults bring it back from either.
 */
TEST_F(hmm, thp_device_folio_mremap)
{
	size_t hp = pmd_size();
	struct hmm_dmirror_stats s0;
	int shift;

	for (shift = 0; shift < 2; shift++) {
		struct tbuf *b = tbuf_thp(self->ps, 183 + shift);
		char *to, *q;

		ASSERT_NE(NULL, b);
		thp_to_device(_metadata, self->fd, self->stats, b, 183 + shift,
			      &s0, variant->large_folios);
		/* a free, aligned 2 huge pages; the target inside it */
		to = mmap(NULL, 3 * hp, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, to);
		to = (char *)(((uintptr_t)to + hp - 1) & ~(uintptr_t)(hp - 1));
		to += shift * self->ps;
		q = mremap(b->cpu, hp, hp, MREMAP_MAYMOVE | MREMAP_FIXED, to);
		ASSERT_EQ(to, q);
		/* an aligned move takes the PMD entry along, whole */
		ASSERT_TRUE(check_huge_anon(q, !shift && variant->large_folios,
					    hp));
		ASSERT_EQ(-1, pattern_check(q, hp, 183 + shift));
		ASSERT_EQ(0, munmap(q, hp));
		tbuf_free(b);
	}
}

/*
 * Whole-PMD operations on a device THP work on its one entry: pagemap
 * shows each page as a swap-format entry, mprotect() leaves it read-only
 * for the device and the data readable by the CPU, and MADV_DONTNEED
 * frees all of its device memory at once.
 */
TEST_F(hmm, thp_device_pmd_whole_ops)
{
	unsigned char pmd = thp_snap_bit(variant);
	struct hmm_dmirror_stats s0, s1;
	struct tbuf *b = tbuf_thp(self->ps, 186);
	unsigned long i;
	int fd;

	ASSERT_NE(NULL, b);
	thp_to_device(_metadata, self->fd, self->stats, b, 186, &s0,
		      variant->large_folios);
	fd = open(PAGEMAP_PATH, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	for (i = 0; i < b->npages; i++)
		ASSERT_EQ(!variant->cpu_in_place,
			  pagemap_is_swapped(fd, tb_page(b, self->ps, i)));
	close(fd);

	ASSERT_EQ(0, mprotect(b->cpu, b->size, PROT_READ));
	ASSERT_TRUE(check_huge_anon(b->cpu, variant->large_folios, pmd_size()));
	snap_all(_metadata, self->fd, b->cpu, b->npages,
		 snap_local(variant, false) | pmd);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 186));
	ASSERT_EQ(0, mprotect(b->cpu, b->size, PROT_READ | PROT_WRITE));
	pattern_fill(b->cpu, b->size, 187);

	thp_to_device(_metadata, self->fd, self->stats, b, 187, &s0,
		      variant->large_folios);
	ASSERT_EQ(0, madvise(b->cpu, b->size, MADV_DONTNEED));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats)
		ASSERT_EQ(s0.pages_in_use - b->npages, s1.pages_in_use);
	ASSERT_EQ(-1, bytes_check(b->cpu, b->size, 0));
	tbuf_free(b);
}

/*
 * Another device reading a device THP it does not own faults it back to
 * system memory (a coherent one reads it where it is), and the owner then
 * sees a THP of system memory.
 */
TEST_F(hmm, thp_device_pmd_read_by_peer)
{
	struct hmm_dmirror_stats s0;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_thp(self->ps, 188);

	ASSERT_NE(NULL, b);
	thp_to_device(_metadata, self->fd, self->stats, b, 188, &s0,
		      variant->large_folios);
	memset(b->dev, 0, b->size);
	ASSERT_EQ(0, tb_cmd(self->peer, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 188));
	snap_all(_metadata, self->fd, b->cpu, b->npages,
		 snap_cpu(variant, true) |
		 thp_snap_bit(variant));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 188));
	tbuf_free(b);
}

/*
 * A THP back from the device is an ordinary THP again: it can be
 * swapped out and read back, and RSS counted it all along.
 */
TEST_F(hmm, thp_back_then_swapped)
{
	struct hmm_dmirror_stats s0;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_thp(self->ps, 185);
	long r0, r1;

	ASSERT_NE(NULL, b);
	tb_touch_dev(b);
	r0 = rss_anon_pages(self->ps);
	thp_to_device(_metadata, self->fd, self->stats, b, 185, &s0,
		      variant->large_folios);
	r1 = rss_anon_pages(self->ps);
	/* device pages are counted as the process's anonymous memory */
	ASSERT_LE(r0 - 16, r1);
	ASSERT_GE(r0 + 16, r1);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(0, madvise(b->cpu, b->size, MADV_PAGEOUT));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 185));
	tbuf_free(b);
}

/*
 * hugetlb memory: mirrored with the order of its page size (PMD for the
 * usual 2 MiB pages), read and written by the device; migration of
 * hugetlb memory is not supported and is refused with EINVAL.
 */
TEST_F(hmm, hugetlb_private)
{
	size_t hs = default_huge_page_size();
	unsigned long npages = hs / self->ps;
	struct hmm_dmirror_cmd c;
	char *p, *io;

	ASSERT_NE(0, hs);
	p = mmap(NULL, hs, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
		 -1, 0);
	ASSERT_NE(MAP_FAILED, p)
		TH_LOG("no huge page: is vm.nr_hugepages set?");
	io = malloc(hs);
	ASSERT_NE(NULL, io);
	pattern_fill(p, hs, 14);

	snap_all(_metadata, self->fd, p, npages, SNAP_W | order_bit(hs));
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_READ, p, npages, io, &c));
	ASSERT_EQ(npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(io, hs, 14));

	pattern_fill(io, hs, 15);
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_WRITE, p, npages, io,
			     &c));
	ASSERT_EQ(-1, pattern_check(p, hs, 15));

	ASSERT_EQ(-EINVAL, dmirror(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, p,
				   npages, io, &c));
	snap_all(_metadata, self->fd, p, npages, SNAP_W | order_bit(hs));
	ASSERT_EQ(-1, pattern_check(p, hs, 15));
	ASSERT_EQ(0, munmap(p, hs));
	free(io);
}

/*
 * A hugetlbfs file (memfd) mapped shared twice: a device write through
 * one mapping is read by the CPU through the other and the reverse.
 */
TEST_F(hmm, hugetlbfs_shared)
{
	size_t hs = default_huge_page_size();
	unsigned long npages = hs / self->ps;
	struct hmm_dmirror_cmd c;
	char *a, *b, *io;
	int mfd;

	ASSERT_NE(0, hs);
	mfd = memfd_create("hmm-tests-huge", MFD_HUGETLB | MFD_CLOEXEC);
	ASSERT_LE(0, mfd) TH_LOG("hugetlbfs memfd: %s", strerror(errno));
	ASSERT_EQ(0, ftruncate(mfd, hs));
	a = mmap(NULL, hs, RW, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, a);
	b = mmap(NULL, hs, RW, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, b);
	io = malloc(hs);
	ASSERT_NE(NULL, io);

	pattern_fill(io, hs, 16);
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_WRITE, a, npages, io,
			     &c));
	ASSERT_EQ(npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b, hs, 16));
	snap_all(_metadata, self->fd, a, npages, SNAP_W | order_bit(hs));

	pattern_fill(b, hs, 17);
	ASSERT_EQ(0, dmirror(self->peer, HMM_DMIRROR_READ, a, npages, io,
			     &c));
	ASSERT_EQ(-1, pattern_check(io, hs, 17));

	ASSERT_EQ(0, munmap(a, hs));
	ASSERT_EQ(0, munmap(b, hs));
	free(io);
	close(mfd);
}

/* Set the number of 1 GiB huge pages; false if that is not possible. */
static bool set_nr_1g(unsigned long n)
{
	FILE *f = fopen(HUGE_1G_NR_PATH, "w");

	if (!f)
		return false;
	fprintf(f, "%lu\n", n);
	return !fclose(f);
}

static void *map_1g(void)
{
	return mmap(NULL, 1UL << 30, RW, MAP_PRIVATE | MAP_ANONYMOUS |
		    MAP_HUGETLB | (30 << MAP_HUGE_SHIFT), -1, 0);
}

/*
 * The order bits name the size of the CPU mapping: a mapping of the
 * default hugetlb size (PMD-sized here) carries PMD and not PUD, and a
 * 1 GiB hugetlb page carries PUD on every one of its pages.
 *
 * The 1 GiB half needs a gigantic page allocated at run time (1 GiB of
 * contiguous free memory); when the kernel cannot provide one it is
 * reported in the log and only the first half is asserted.
 */
TEST_F_TIMEOUT(hmm, hugetlb_order_bits, 120)
{
	const size_t gb = 1UL << 30, hs = default_huge_page_size();
	unsigned long old = read_ulong(HUGE_1G_NR_PATH, ~0UL), span = 64;
	struct hmm_dmirror_cmd c;
	bool raised = false;
	char *p, *io;

	ASSERT_NE(0, hs);
	ASSERT_EQ(pmd_size(), hs) TH_LOG("default huge page is not PMD-sized");
	p = mmap(NULL, hs, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
		 -1, 0);
	ASSERT_NE(MAP_FAILED, p);
	memset(p, 1, hs);
	snap_all(_metadata, self->fd, p, hs / self->ps,
		 SNAP_W | HMM_DMIRROR_PROT_PMD);
	ASSERT_EQ(0, munmap(p, hs));

	p = MAP_FAILED;
	if (old != ~0UL) {
		p = map_1g();
		if (p == MAP_FAILED) {
			raised = set_nr_1g(old + 1);
			p = map_1g();
		}
	}
	if (p == MAP_FAILED) {
		if (raised)
			set_nr_1g(old);
		TH_LOG("no 1 GiB huge page available: PUD bit not exercised");
		return;
	}
	io = malloc(span * self->ps);
	ASSERT_NE(NULL, io);
	pattern_fill(p, span * self->ps, 18);
	pattern_fill(p + gb - span * self->ps, span * self->ps, 19);
	snap_all(_metadata, self->fd, p, span,
		 SNAP_W | HMM_DMIRROR_PROT_PUD);
	snap_all(_metadata, self->fd, p + gb - span * self->ps, span,
		 SNAP_W | HMM_DMIRROR_PROT_PUD);
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_READ,
			     p + gb - span * self->ps, span, io, &c));
	ASSERT_EQ(-1, pattern_check(io, span * self->ps, 19));
	ASSERT_EQ(0, munmap(p, gb));
	free(io);
	if (raised)
		ASSERT_TRUE(set_nr_1g(old));
}

/* ------------------------------------------------------------------ */
/* Large folios of every order (mTHP)                                  */
/* ------------------------------------------------------------------ */

/*
 * The folio sizes the mthp_* cases take in turn, in KiB: orders 2, 4 and
 * 8 with 4 KiB pages. Each size runs with only that size enabled
 * (mthp_only()); when a case fails, the teardown logs the size it was on.
 */
static const unsigned long mthp_kb[] = { 16, 64, 1024 };

/* Folios in a buffer: a first, a last and two in between. */
#define MTHP_NR			4

#define KPAGEFLAGS_PATH		"/proc/kpageflags"
#define KPF_HEAD_BIT		15	/* KPF_COMPOUND_HEAD */
#define KPF_TAIL_BIT		16	/* KPF_COMPOUND_TAIL */
#define MTHP_SCAN		1024	/* pages, more than any folio here */

/* Order of a folio of @kb KiB. */
static unsigned int kb_order(unsigned long kb, size_t ps)
{
	return __builtin_ctzl((kb << 10) / ps);
}

/*
 * Order of the system folio whose first page the CPU maps at @addr, as
 * pagemap and /proc/kpageflags tell (both show page frames to root only):
 * 0 for a page on its own, k for the head of an order-k folio whose pages
 * the 2^k virtual pages from @addr map in order. -1 for anything else: no
 * page or a device-private page there, a tail page, a folio that is not
 * mapped whole and in order, files that cannot be read.
 */
static int cpu_folio_order(void *addr, size_t ps)
{
	uint64_t *pm = calloc(MTHP_SCAN, sizeof(*pm));
	uint64_t *kf = calloc(MTHP_SCAN, sizeof(*kf));
	int pfd = open(PAGEMAP_PATH, O_RDONLY | O_CLOEXEC);
	int kfd = open(KPAGEFLAGS_PATH, O_RDONLY | O_CLOEXEC);
	off_t at = (uintptr_t)addr / ps * sizeof(*pm);
	unsigned long pfn, n = 1, i;
	int order = -1;
	ssize_t got;

	if (!pm || !kf || pfd < 0 || kfd < 0)
		goto out;
	if (pread(pfd, pm, sizeof(*pm), at) != sizeof(*pm) ||
	    !(pm[0] & PM_PRESENT))
		goto out;
	pfn = PAGEMAP_PFN(pm[0]);
	got = pread(kfd, kf, MTHP_SCAN * sizeof(*kf), pfn * sizeof(*kf));
	if (got < (ssize_t)sizeof(*kf) || (kf[0] & BIT_ULL(KPF_TAIL_BIT)))
		goto out;
	/* the folio's size: the tail pages that follow its head */
	if (kf[0] & BIT_ULL(KPF_HEAD_BIT))
		while (n < got / sizeof(*kf) && (kf[n] & BIT_ULL(KPF_TAIL_BIT)))
			n++;
	if (n & (n - 1))
		goto out;
	if (pread(pfd, pm, n * sizeof(*pm), at) != (ssize_t)(n * sizeof(*pm)))
		goto out;
	for (i = 0; i < n; i++)
		if (!(pm[i] & PM_PRESENT) || PAGEMAP_PFN(pm[i]) != pfn + i)
			goto out;
	order = __builtin_ctzl(n);
out:
	if (pfd >= 0)
		close(pfd);
	if (kfd >= 0)
		close(kfd);
	free(pm);
	free(kf);
	return order;
}

/*
 * Folios @first to @first + @n - 1 of @b (folios of @kb KiB) are each, as
 * the CPU maps them, one system folio of @order.
 */
static void cpu_folios_are(struct __test_metadata *_metadata, struct tbuf *b,
			   size_t ps, unsigned long kb, unsigned long first,
			   unsigned long n, int order)
{
	unsigned long f;

	for (f = first; f < first + n; f++) {
		ASSERT_EQ(order, cpu_folio_order(b->cpu + f * (kb << 10), ps))
			TH_LOG("folio %lu of %lu KiB", f, kb);
	}
}

/*
 * @nr folios' worth of private anonymous memory, @fsize bytes each,
 * aligned to @fsize, between PROT_NONE guards, and written with pattern
 * @seed: under mthp_only() each first write into a folio-sized slot takes
 * one folio of that size. NULL if it cannot be mapped.
 */
static struct tbuf *tbuf_mthp(size_t psize, size_t fsize, unsigned long nr,
			      uint32_t seed)
{
	struct tbuf *b = calloc(1, sizeof(*b));
	uintptr_t start;

	if (!b)
		return NULL;
	b->size = nr * fsize;
	b->npages = b->size / psize;
	b->resv_size = b->size + 2 * fsize;
	b->resv = mmap(NULL, b->resv_size, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b->resv == MAP_FAILED) {
		free(b);
		return NULL;
	}
	start = ((uintptr_t)b->resv + psize + fsize - 1) &
		~(uintptr_t)(fsize - 1);
	b->cpu = mmap((void *)start, b->size, RW,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	b->dev = malloc(b->size);
	b->snap = malloc(b->npages);
	if (b->cpu == MAP_FAILED || !b->dev || !b->snap) {
		tbuf_free(b);
		return NULL;
	}
	/* allocated with compaction if need be, as a THP would be */
	madvise(b->cpu, b->size, MADV_HUGEPAGE);
	pattern_fill(b->cpu, b->size, seed);
	return b;
}

/*
 * With only @kb KiB folios enabled, a buffer of MTHP_NR of them holding
 * pattern @seed; each is one folio of that size, as the CPU maps it.
 */
static struct tbuf *mthp_buf(struct __test_metadata *_metadata,
			     struct _test_data_hmm *self, unsigned long kb,
			     uint32_t seed)
{
	struct tbuf *b;

	mthp_only(_metadata, kb);
	b = tbuf_mthp(self->ps, kb << 10, MTHP_NR, seed);
	ASSERT_NE(NULL, b);
	cpu_folios_are(_metadata, b, self->ps, kb, 0, MTHP_NR,
		       kb_order(kb, self->ps));
	return b;
}

/*
 * HMM_DMIRROR_FOLIO_ORDERS over @npages pages at @addr through @fd: page i
 * reports want[i] (want[0] for every page when @all). Every mismatch is
 * logged before the test fails.
 */
static void orders_cmp(struct __test_metadata *_metadata, int fd, void *addr,
		       unsigned long npages, const unsigned char *want,
		       bool all)
{
	struct hmm_dmirror_cmd c;
	unsigned long i, bad = 0;
	unsigned char *m = malloc(npages);

	ASSERT_NE(NULL, m);
	memset(m, 0xee, npages);
	ASSERT_EQ(0, dmirror(fd, HMM_DMIRROR_FOLIO_ORDERS, addr, npages, m,
			     &c));
	ASSERT_EQ(npages, c.cpages);
	for (i = 0; i < npages; i++) {
		unsigned char w = all ? want[0] : want[i];

		if (m[i] == w)
			continue;
		if (bad++ < 8)
			TH_LOG("page %lu: order %u, expected %u", i, m[i], w);
	}
	free(m);
	ASSERT_EQ(0, bad);
}

static void orders_all(struct __test_metadata *_metadata, int fd, void *addr,
		       unsigned long npages, unsigned char want)
{
	orders_cmp(_metadata, fd, addr, npages, &want, true);
}

/*
 * Every page of @b, made of folios of @kb KiB, is back in system memory,
 * writable, in folios of @order (0: split on the way), holding the
 * pattern of @seed; @b is freed.
 */
static void mthp_all_home(struct __test_metadata *_metadata,
			  struct _test_data_hmm *self, struct tbuf *b,
			  unsigned long kb, unsigned int order, uint32_t seed)
{
	snap_all(_metadata, self->fd, b->cpu, b->npages, SNAP_W);
	cpu_folios_are(_metadata, b, self->ps, kb, 0, MTHP_NR, order);
	orders_all(_metadata, self->fd, b->cpu, b->npages, order);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed));
	tbuf_free(b);
}

/*
 * Between @s0 and @s1, into the device (@in) or out of it, @whole folios
 * of @order moved and @single pages of order 0, nothing of another order,
 * and as many pages as that makes.
 */
static void moved_as(struct __test_metadata *_metadata,
		     const struct hmm_dmirror_stats *s0,
		     const struct hmm_dmirror_stats *s1, bool in,
		     unsigned int order, long whole, long single)
{
	long pages = in ? (long)(s1->to_device - s0->to_device) :
			  (long)(s1->to_system - s0->to_system);
	unsigned int o;

	for (o = 0; o < HMM_DMIRROR_STAT_ORDERS; o++) {
		ASSERT_EQ(o == order ? whole : o ? 0 : single,
			  moved_folios(s0, s1, o, in))
			TH_LOG("folios of order %u moved %s", o,
			       in ? "to the device" : "to system memory");
	}
	ASSERT_EQ((whole << order) + single, pages);
}

/*
 * Moved as the kind moves @nr folios of @order, @n pages in all: one
 * device folio each on a private unit, page by page on a coherent one.
 */
static void moved_whole(struct __test_metadata *_metadata,
			const struct _fixture_variant_hmm *v,
			const struct hmm_dmirror_stats *s0,
			const struct hmm_dmirror_stats *s1, bool in,
			unsigned int order, long nr)
{
	if (v->large_folios)
		moved_as(_metadata, s0, s1, in, order, nr, 0);
	else
		moved_as(_metadata, s0, s1, in, order, 0, nr << order);
}

/* Everything of @b to the device, its data read back; counters in @st. */
static void mthp_to_device(struct __test_metadata *_metadata,
			   struct _test_data_hmm *self, struct tbuf *b,
			   uint32_t seed, struct hmm_dmirror_stats *st)
{
	struct hmm_dmirror_cmd c;

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, seed));
	stats_get(_metadata, self->fd, self->stats, st);
}

/*
 * Everything of @b still on the device back by command, @s0 the counters
 * taken when it went in: @whole folios of @order and @single pages move,
 * and after them the device has freed every page it took for @b, those
 * moved and those dropped on the way.
 */
static void mthp_back_by_cmd(struct __test_metadata *_metadata,
			     struct _test_data_hmm *self, struct tbuf *b,
			     const struct hmm_dmirror_stats *s0,
			     unsigned int order, long whole, long single)
{
	struct hmm_dmirror_stats s1;
	struct hmm_dmirror_cmd c;

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ((whole << order) + single, c.cpages);
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats) {
		moved_as(_metadata, s0, &s1, false, order, whole, single);
		ASSERT_EQ(s0->pages_in_use - b->npages, s1.pages_in_use);
	}
}

/*
 * Move the @size bytes at @from with mremap() to @off bytes past an
 * @align-aligned address inside a fresh PROT_NONE reservation of @size +
 * 2 * @align bytes, returned in *@resv for the caller to unmap. The new
 * address, or NULL.
 */
static char *mremap_at(void *from, size_t size, size_t align, size_t off,
		       char **resv)
{
	char *r = mmap(NULL, size + 2 * align, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *to;

	if (r == MAP_FAILED)
		return NULL;
	*resv = r;
	to = (char *)(((uintptr_t)r + align - 1) & ~(uintptr_t)(align - 1));
	to += off;
	if (mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to)
		return NULL;
	return to;
}

/*
 * How many of the @npages pages at @addr have pagemap entries whose bits
 * under @mask are @want, or -errno. Reads into the stack, allocating
 * nothing, so that it can stand between two readings of RSS.
 */
static long pagemap_count(void *addr, unsigned long npages, size_t ps,
			  uint64_t mask, uint64_t want)
{
	off_t at = (uintptr_t)addr / ps * sizeof(uint64_t);
	unsigned long i, n, done;
	uint64_t pm[64];
	long count = 0;
	int fd = open(PAGEMAP_PATH, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	for (done = 0; done < npages; done += n) {
		n = npages - done < 64 ? npages - done : 64;
		if (pread(fd, pm, n * sizeof(*pm), at + done * sizeof(*pm)) !=
		    (ssize_t)(n * sizeof(*pm))) {
			count = -EIO;
			break;
		}
		for (i = 0; i < n; i++)
			count += (pm[i] & mask) == want;
	}
	close(fd);
	return count;
}

/*
 * Whole folios of each size go to the device and back by command. The
 * device reports the order of each (the CPU's view, from kpageflags,
 * agrees); a private unit takes each folio as one device folio of that
 * order, reported with it, and gives each back as one system folio of that
 * order; a coherent unit takes and gives back page by page.
 */
TEST_F(hmm, mthp_round_trip_ioctl)
{
	bool whole = variant->large_folios;
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mthp_kb); i++) {
		unsigned int order = kb_order(mthp_kb[i], self->ps);
		uint32_t seed = 400 + i;
		struct tbuf *b = mthp_buf(_metadata, self, mthp_kb[i], seed);

		orders_all(_metadata, self->fd, b->cpu, b->npages, order);
		stats_get(_metadata, self->fd, self->stats, &s0);
		mthp_to_device(_metadata, self, b, seed, &s1);
		if (self->stats) {
			moved_whole(_metadata, variant, &s0, &s1, true, order,
				    MTHP_NR);
			ASSERT_EQ(b->npages, s1.pages_in_use - s0.pages_in_use);
		}
		snap_all(_metadata, self->fd, b->cpu, b->npages,
			 snap_local(variant, true));
		orders_all(_metadata, self->fd, b->cpu, b->npages,
			   whole ? order : 0);

		s0 = s1;
		ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b,
				    &c));
		ASSERT_EQ(b->npages, c.cpages);
		stats_get(_metadata, self->fd, self->stats, &s1);
		if (self->stats) {
			moved_whole(_metadata, variant, &s0, &s1, false, order,
				    MTHP_NR);
			ASSERT_EQ(s0.pages_in_use - b->npages, s1.pages_in_use);
		}
		mthp_all_home(_metadata, self, b, mthp_kb[i],
			      whole ? order : 0, seed);
	}
}

/*
 * A CPU read of one page in each device folio brings the whole folio
 * back, in one fault, as one system folio of its order. A coherent unit's
 * pages are read where they are.
 */
TEST_F(hmm, mthp_round_trip_cpu_fault)
{
	struct hmm_dmirror_stats s0, s1;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mthp_kb); i++) {
		unsigned int order = kb_order(mthp_kb[i], self->ps);
		unsigned long f, pg, per = 1UL << order;
		uint32_t seed = 410 + i;
		struct tbuf *b = mthp_buf(_metadata, self, mthp_kb[i], seed);

		mthp_to_device(_metadata, self, b, seed, &s0);
		for (f = 0; f < MTHP_NR; f++) {
			pg = f * per + per / 2 + 1;
			ASSERT_EQ(-1, pattern_check_from(tb_page(b, self->ps,
								 pg),
							 self->ps, seed,
							 pg * self->ps));
		}
		stats_get(_metadata, self->fd, self->stats, &s1);
		if (variant->cpu_in_place) {
			if (self->stats) {
				ASSERT_EQ(0, s1.faults - s0.faults);
				moved_as(_metadata, &s0, &s1, false, order, 0,
					 0);
			}
			snap_all(_metadata, self->fd, b->cpu, b->npages,
				 snap_local(variant, true));
		} else {
			if (self->stats) {
				ASSERT_EQ(MTHP_NR, s1.faults - s0.faults);
				moved_as(_metadata, &s0, &s1, false, order,
					 MTHP_NR, 0);
				ASSERT_EQ(s0.pages_in_use - b->npages,
					  s1.pages_in_use);
			}
			/* every page came back, not only those read */
			snap_all(_metadata, self->fd, b->cpu, b->npages,
				 SNAP_W);
			cpu_folios_are(_metadata, b, self->ps, mthp_kb[i], 0,
				       MTHP_NR, order);
			orders_all(_metadata, self->fd, b->cpu, b->npages,
				   order);
		}
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed));
		tbuf_free(b);
	}
}

/*
 * A range that starts in the middle of the first folio and ends in the
 * middle of the last: those two are split, and only their pages inside
 * the range move, one by one; the folios in between move whole. Nothing
 * outside the range moves, and all the data is right on both sides.
 */
TEST_F(hmm, mthp_straddling_range)
{
	bool whole = variant->large_folios;
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mthp_kb); i++) {
		unsigned int order = kb_order(mthp_kb[i], self->ps);
		unsigned long per = 1UL << order, first = per / 2, n, p;
		uint32_t seed = 420 + i;
		struct tbuf *b = mthp_buf(_metadata, self, mthp_kb[i], seed);
		unsigned char *snap = malloc(b->npages);
		unsigned char *ord = malloc(b->npages);

		ASSERT_NE(NULL, snap);
		ASSERT_NE(NULL, ord);
		n = b->npages - per;
		stats_get(_metadata, self->fd, self->stats, &s0);
		ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV,
					  b, self->ps, first, n, &c));
		ASSERT_EQ(n, c.cpages);
		ASSERT_EQ(-1, pattern_check_from(b->dev + first * self->ps,
						 n * self->ps, seed,
						 first * self->ps));
		stats_get(_metadata, self->fd, self->stats, &s1);
		if (self->stats)
			moved_as(_metadata, &s0, &s1, true, order,
				 whole ? MTHP_NR - 2 : 0,
				 whole ? per : (long)n);
		for (p = 0; p < b->npages; p++) {
			bool in = p >= first && p < first + n;
			bool edge = p < per || p >= b->npages - per;

			snap[p] = in ? snap_local(variant, true) : SNAP_W;
			ord[p] = edge || !whole ? 0 : order;
		}
		snap_cmp(_metadata, self->fd, b->cpu, b->npages, snap, false);
		orders_cmp(_metadata, self->fd, b->cpu, b->npages, ord, false);

		s0 = s1;
		ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b,
				    &c));
		ASSERT_EQ(n, c.cpages);
		stats_get(_metadata, self->fd, self->stats, &s1);
		if (self->stats)
			moved_as(_metadata, &s0, &s1, false, order,
				 whole ? MTHP_NR - 2 : 0,
				 whole ? per : (long)n);
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed));
		snap_all(_metadata, self->fd, b->cpu, b->npages, SNAP_W);
		orders_cmp(_metadata, self->fd, b->cpu, b->npages, ord, false);
		free(snap);
		free(ord);
		tbuf_free(b);
	}
}

/*
 * A folio with one page unmapped is not moved as one: each part of the
 * buffer around the hole is migrated, the folio's mapped pages move one
 * by one, the other folios whole, and the data is right.
 */
TEST_F(hmm, mthp_partly_unmapped)
{
	bool whole = variant->large_folios;
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mthp_kb); i++) {
		unsigned int order = kb_order(mthp_kb[i], self->ps);
		unsigned long per = 1UL << order, hole = 2 * per - 1, rest;
		uint32_t seed = 430 + i;
		struct tbuf *b = mthp_buf(_metadata, self, mthp_kb[i], seed);
		char *after = tb_page(b, self->ps, hole + 1);

		rest = b->npages - hole - 1;
		ASSERT_EQ(0, munmap(tb_page(b, self->ps, hole), self->ps));
		/* folio 1 is not mapped whole any more */
		orders_all(_metadata, self->fd, b->cpu, per, order);
		orders_all(_metadata, self->fd, tb_page(b, self->ps, per),
			   per - 1, 0);
		orders_all(_metadata, self->fd, after, rest, order);

		stats_get(_metadata, self->fd, self->stats, &s0);
		ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV,
					  b, self->ps, 0, hole, &c));
		ASSERT_EQ(hole, c.cpages);
		ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV,
					  b, self->ps, hole + 1, rest, &c));
		ASSERT_EQ(rest, c.cpages);
		ASSERT_EQ(-1, pattern_check(b->dev, hole * self->ps, seed));
		ASSERT_EQ(-1, pattern_check_from(b->dev + (hole + 1) * self->ps,
						 rest * self->ps, seed,
						 (hole + 1) * self->ps));
		stats_get(_metadata, self->fd, self->stats, &s1);
		if (self->stats)
			moved_as(_metadata, &s0, &s1, true, order,
				 whole ? MTHP_NR - 1 : 0,
				 whole ? per - 1 : (long)(b->npages - 1));
		snap_all(_metadata, self->fd, b->cpu, hole,
			 snap_local(variant, true));
		snap_all(_metadata, self->fd, after, rest,
			 snap_local(variant, true));

		s0 = s1;
		ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS,
					  b, self->ps, 0, hole, &c));
		ASSERT_EQ(hole, c.cpages);
		ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS,
					  b, self->ps, hole + 1, rest, &c));
		ASSERT_EQ(rest, c.cpages);
		stats_get(_metadata, self->fd, self->stats, &s1);
		if (self->stats)
			moved_as(_metadata, &s0, &s1, false, order,
				 whole ? MTHP_NR - 1 : 0,
				 whole ? per - 1 : (long)(b->npages - 1));
		ASSERT_EQ(-1, pattern_check(b->cpu, hole * self->ps, seed));
		ASSERT_EQ(-1, pattern_check_from(after, rest * self->ps, seed,
						 (hole + 1) * self->ps));
		tbuf_free(b);
	}
}

/*
 * Half of one device folio unmapped: the device reports the rest of that
 * folio page by page and the other folios whole; everything left comes
 * back with its data (that folio's pages one by one), and none of the
 * device memory stays in use.
 */
TEST_F(hmm, mthp_device_folio_partial_munmap)
{
	bool whole = variant->large_folios;
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mthp_kb); i++) {
		unsigned int order = kb_order(mthp_kb[i], self->ps);
		unsigned long per = 1UL << order, cut = per / 2, rest;
		uint32_t seed = 440 + i;
		struct tbuf *b = mthp_buf(_metadata, self, mthp_kb[i], seed);
		char *after = tb_page(b, self->ps, per + cut);

		rest = b->npages - per - cut;
		mthp_to_device(_metadata, self, b, seed, &s0);
		ASSERT_EQ(0, munmap(tb_page(b, self->ps, per), cut * self->ps));
		orders_all(_metadata, self->fd, b->cpu, per, whole ? order : 0);
		orders_all(_metadata, self->fd, after, per - cut, 0);
		orders_all(_metadata, self->fd, after + (per - cut) * self->ps,
			   rest - (per - cut), whole ? order : 0);

		ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS,
					  b, self->ps, 0, per, &c));
		ASSERT_EQ(per, c.cpages);
		ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS,
					  b, self->ps, per + cut, rest, &c));
		ASSERT_EQ(rest, c.cpages);
		stats_get(_metadata, self->fd, self->stats, &s1);
		if (self->stats) {
			moved_as(_metadata, &s0, &s1, false, order,
				 whole ? MTHP_NR - 1 : 0,
				 whole ? per - cut : (long)(b->npages - cut));
			ASSERT_EQ(s0.pages_in_use - b->npages,
				  s1.pages_in_use);
		}
		ASSERT_EQ(-1, pattern_check(b->cpu, per * self->ps, seed));
		ASSERT_EQ(-1, pattern_check_from(after, rest * self->ps, seed,
						 (per + cut) * self->ps));
		snap_all(_metadata, self->fd, b->cpu, per, SNAP_W);
		snap_all(_metadata, self->fd, after, rest, SNAP_W);
		tbuf_free(b);
	}
}

/*
 * mprotect() of half of one device folio: that half is mirrored read-only,
 * the folio is reported page by page (its pages no longer have the same
 * rights), the others whole; everything comes back with its data, that
 * folio's pages one by one, and the read-only half stays read-only.
 */
TEST_F(hmm, mthp_device_folio_mprotect)
{
	bool whole = variant->large_folios;
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mthp_kb); i++) {
		unsigned int order = kb_order(mthp_kb[i], self->ps);
		unsigned long per = 1UL << order, cut = per / 2, p;
		uint32_t seed = 450 + i;
		struct tbuf *b = mthp_buf(_metadata, self, mthp_kb[i], seed);
		char *ro = tb_page(b, self->ps, per + cut);
		unsigned char *snap = malloc(b->npages);
		unsigned char *ord = malloc(b->npages);

		ASSERT_NE(NULL, snap);
		ASSERT_NE(NULL, ord);
		mthp_to_device(_metadata, self, b, seed, &s0);
		ASSERT_EQ(0, mprotect(ro, (per - cut) * self->ps, PROT_READ));
		for (p = 0; p < b->npages; p++) {
			bool w = p < per + cut || p >= 2 * per;

			snap[p] = snap_local(variant, w);
			ord[p] = whole && (p < per || p >= 2 * per) ? order : 0;
		}
		snap_cmp(_metadata, self->fd, b->cpu, b->npages, snap, false);
		orders_cmp(_metadata, self->fd, b->cpu, b->npages, ord, false);

		ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b,
				    &c));
		ASSERT_EQ(b->npages, c.cpages);
		stats_get(_metadata, self->fd, self->stats, &s1);
		if (self->stats) {
			moved_as(_metadata, &s0, &s1, false, order,
				 whole ? MTHP_NR - 1 : 0,
				 whole ? per : (long)b->npages);
			ASSERT_EQ(s0.pages_in_use - b->npages,
				  s1.pages_in_use);
		}
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed));
		for (p = 0; p < b->npages; p++)
			snap[p] = snap[p] & SNAP_W ? SNAP_W : SNAP_R;
		snap_cmp(_metadata, self->fd, b->cpu, b->npages, snap, false);
		ASSERT_EQ(0, mprotect(ro, (per - cut) * self->ps, RW));
		pattern_fill(b->cpu, b->size, seed + 100);
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed + 100));
		free(snap);
		free(ord);
		tbuf_free(b);
	}
}

/*
 * fork() with device folios: the parent writes over its copy while the
 * child still holds the original, then the child reads the original and
 * writes its own; neither sees the other's data, and the parent's folios
 * still go to the device and back.
 */
TEST_F(hmm, mthp_device_folio_fork)
{
	struct hmm_dmirror_stats s0;
	struct hmm_dmirror_cmd c;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mthp_kb); i++) {
		uint32_t seed = 460 + i;
		struct tbuf *b = mthp_buf(_metadata, self, mthp_kb[i], seed);
		int pipefd[2];
		char go = 0;
		pid_t pid;

		mthp_to_device(_metadata, self, b, seed, &s0);
		ASSERT_EQ(0, pipe(pipefd));
		pid = fork();
		ASSERT_LE(0, pid);
		if (!pid) {
			close(pipefd[1]);
			CHILD_CHECK(read(pipefd[0], &go, 1) == 1);
			child_rewrite_exit(b, seed, seed + 1000);
		}
		close(pipefd[0]);
		pattern_fill(b->cpu, b->size, seed + 2000);
		ASSERT_EQ(1, write(pipefd[1], &go, 1));
		close(pipefd[1]);
		ASSERT_EQ(0, child_wait(pid));
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed + 2000));

		ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b,
				    &c));
		ASSERT_EQ(b->npages, c.cpages);
		ASSERT_EQ(-1, pattern_check(b->dev, b->size, seed + 2000));
		ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b,
				    &c));
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed + 2000));
		tbuf_free(b);
	}
}

/*
 * Device folios evicted from the device side (HMM_DMIRROR_RELEASE) come
 * back each as one system folio of its order (page by page from a
 * coherent unit), data intact.
 */
TEST_F(hmm, mthp_device_folio_evicted)
{
	bool whole = variant->large_folios;
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mthp_kb); i++) {
		unsigned int order = kb_order(mthp_kb[i], self->ps);
		uint32_t seed = 470 + i;
		struct tbuf *b = mthp_buf(_metadata, self, mthp_kb[i], seed);

		mthp_to_device(_metadata, self, b, seed, &s0);
		ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_RELEASE, b, &c));
		ASSERT_LE(b->npages, c.cpages);
		stats_get(_metadata, self->fd, self->stats, &s1);
		if (self->stats) {
			ASSERT_EQ(1, s1.evictions - s0.evictions);
			moved_whole(_metadata, variant, &s0, &s1, false, order,
				    MTHP_NR);
		}
		mthp_all_home(_metadata, self, b, mthp_kb[i],
			      whole ? order : 0, seed);
	}
}

/*
 * HMM_DMIRROR_FLAG_FAIL_ALLOC: no large folio can be had on either side,
 * so folios move as small pages, into the device, out of it by command,
 * and by a CPU fault on a private unit, which splits the device folio
 * and brings back only the page touched.
 */
TEST_F(hmm, mthp_fail_alloc)
{
	const uint64_t fail = HMM_DMIRROR_FLAG_FAIL_ALLOC;
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mthp_kb); i++) {
		unsigned int order = kb_order(mthp_kb[i], self->ps);
		unsigned long per = 1UL << order, p, touch = per + 1, home;
		long back;
		uint32_t seed = 480 + i;
		struct tbuf *b = mthp_buf(_metadata, self, mthp_kb[i], seed);

		/* in and out with the flag */
		ASSERT_EQ(0, set_flags(self->fd, fail));
		stats_get(_metadata, self->fd, self->stats, &s0);
		mthp_to_device(_metadata, self, b, seed, &s1);
		if (self->stats)
			moved_as(_metadata, &s0, &s1, true, order, 0,
				 b->npages);
		snap_all(_metadata, self->fd, b->cpu, b->npages,
			 snap_local(variant, true));
		orders_all(_metadata, self->fd, b->cpu, b->npages, 0);
		s0 = s1;
		ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b,
				    &c));
		ASSERT_EQ(b->npages, c.cpages);
		stats_get(_metadata, self->fd, self->stats, &s1);
		ASSERT_EQ(0, set_flags(self->fd, 0));
		if (self->stats)
			moved_as(_metadata, &s0, &s1, false, order, 0,
				 b->npages);
		orders_all(_metadata, self->fd, b->cpu, b->npages, 0);
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed));
		tbuf_free(b);

		/* in whole, out by command with the flag */
		b = mthp_buf(_metadata, self, mthp_kb[i], seed + 10);
		mthp_to_device(_metadata, self, b, seed + 10, &s0);
		ASSERT_EQ(0, set_flags(self->fd, fail));
		ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b,
				    &c));
		ASSERT_EQ(b->npages, c.cpages);
		stats_get(_metadata, self->fd, self->stats, &s1);
		ASSERT_EQ(0, set_flags(self->fd, 0));
		if (self->stats) {
			moved_as(_metadata, &s0, &s1, false, order, 0,
				 b->npages);
			ASSERT_EQ(s0.pages_in_use - b->npages,
				  s1.pages_in_use);
		}
		orders_all(_metadata, self->fd, b->cpu, b->npages, 0);
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed + 10));
		tbuf_free(b);

		/* in whole, one page of folio 1 read by the CPU with the flag */
		b = mthp_buf(_metadata, self, mthp_kb[i], seed + 20);
		mthp_to_device(_metadata, self, b, seed + 20, &s0);
		ASSERT_EQ(0, set_flags(self->fd, fail));
		ASSERT_EQ(-1, pattern_check_from(tb_page(b, self->ps, touch),
						 self->ps, seed + 20,
						 touch * self->ps));
		stats_get(_metadata, self->fd, self->stats, &s1);
		ASSERT_EQ(0, set_flags(self->fd, 0));
		if (!variant->cpu_in_place) {
			for (p = per, home = 0; p < 2 * per; p++) {
				int m = snap_one(self->fd,
						 tb_page(b, self->ps, p));
				/* the folio is split; only the page touched is home */
				int want = p == touch ? SNAP_W :
					   snap_local(variant, true);

				ASSERT_EQ(want, m)
					TH_LOG("page %lu of the folio: 0x%02x",
					       p - per, m);
				home += m == SNAP_W;
			}
			back = s1.to_system - s0.to_system;
			ASSERT_EQ(1, home);
			if (self->stats) {
				ASSERT_EQ(1, s1.faults - s0.faults);
				ASSERT_EQ(home, back);
				moved_as(_metadata, &s0, &s1, false, order, 0,
					 back);
			}
		}
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed + 20));
		tbuf_free(b);
	}
}

/*
 * The order report (HMM_DMIRROR_FOLIO_ORDERS) asks hmm_range_fault() for
 * the order of folios mapped by PTEs; under HMM_DMIRROR_FLAG_NO_FOLIO_ORDER
 * it does not ask, as a 6.12 driver would not, and reads 0 for them, while
 * a THP mapped by a PMD reads as before. A page of its own reads 0, no
 * page reads HMM_DMIRROR_ORDER_NONE, and a folio reads 0 on every page
 * once its pages differ in rights or it is mapped where it is not
 * naturally aligned. Device folios read the same way. Snapshots do not
 * change with the flag.
 */
TEST_F(hmm, mthp_folio_order_report)
{
	const uint64_t no_order = HMM_DMIRROR_FLAG_NO_FOLIO_ORDER;
	unsigned char pmd = pmd_order(self->ps);
	bool whole = variant->large_folios;
	struct tbuf *t;
	unsigned int i;

	/* before any knob is touched: a PMD THP, and small pages */
	t = tbuf_thp(self->ps, 490);
	ASSERT_NE(NULL, t);
	orders_all(_metadata, self->fd, t->cpu, t->npages, pmd);
	ASSERT_EQ(0, set_flags(self->fd, no_order));
	orders_all(_metadata, self->fd, t->cpu, t->npages, pmd);
	snap_all(_metadata, self->fd, t->cpu, t->npages,
		 SNAP_W | HMM_DMIRROR_PROT_PMD);
	ASSERT_EQ(0, set_flags(self->fd, 0));
	tbuf_free(t);
	t = tbuf_anon(self->ps, 8, RW);
	ASSERT_NE(NULL, t);
	memset(t->cpu, 1, 4 * self->ps);
	orders_all(_metadata, self->fd, t->cpu, 4, 0);
	orders_all(_metadata, self->fd, t->cpu + 4 * self->ps, 4,
		   HMM_DMIRROR_ORDER_NONE);
	tbuf_free(t);

	for (i = 0; i < ARRAY_SIZE(mthp_kb); i++) {
		unsigned int order = kb_order(mthp_kb[i], self->ps);
		unsigned long per = 1UL << order;
		size_t fs = mthp_kb[i] << 10;
		uint32_t seed = 491 + i;
		struct tbuf *b = mthp_buf(_metadata, self, mthp_kb[i], seed);
		struct hmm_dmirror_cmd c;
		char *resv, *to;

		orders_all(_metadata, self->fd, b->cpu, b->npages, order);
		snap_all(_metadata, self->fd, b->cpu, b->npages, SNAP_W);
		ASSERT_EQ(0, set_flags(self->fd, no_order));
		orders_all(_metadata, self->fd, b->cpu, b->npages, 0);
		snap_all(_metadata, self->fd, b->cpu, b->npages, SNAP_W);
		ASSERT_EQ(0, set_flags(self->fd, 0));

		/* folio 0 with half of it read-only */
		ASSERT_EQ(0, mprotect(b->cpu, per / 2 * self->ps, PROT_READ));
		orders_all(_metadata, self->fd, b->cpu, per, 0);
		orders_all(_metadata, self->fd, tb_page(b, self->ps, per), per,
			   order);

		/* the last folio moved one page off its alignment */
		to = mremap_at(tb_page(b, self->ps, 3 * per), fs, fs, self->ps,
			       &resv);
		ASSERT_NE(NULL, to);
		orders_all(_metadata, self->fd, to, per, 0);
		ASSERT_EQ(-1, pattern_check_from(to, fs, seed, 3 * fs));
		ASSERT_EQ(0, munmap(resv, 3 * fs));

		/* folios 1 and 2 in device memory */
		ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV,
					  b, self->ps, per, 2 * per, &c));
		ASSERT_EQ(2 * per, c.cpages);
		orders_all(_metadata, self->fd, tb_page(b, self->ps, per),
			   2 * per, whole ? order : 0);
		ASSERT_EQ(0, set_flags(self->fd, no_order));
		orders_all(_metadata, self->fd, tb_page(b, self->ps, per),
			   2 * per, 0);
		snap_all(_metadata, self->fd, tb_page(b, self->ps, per),
			 2 * per, snap_local(variant, true));
		ASSERT_EQ(0, set_flags(self->fd, 0));
		ASSERT_EQ(-1, pattern_check_from(tb_page(b, self->ps, per),
						 2 * fs, seed, fs));
		tbuf_free(b);
	}
}

/*
 * MADV_DONTNEED of the second half of folio 1 and of all of folio 2 while
 * they are on the device: the device sees no page there any more, folio
 * 1's first half is reported page by page, folios 0 and 3 whole (on a
 * private unit). Folio 2 is freed at once; folio 1's dropped half may wait
 * for the rest of its folio, but no more than was dropped is freed. What
 * is left comes back by command with its data (folio 1's pages one by
 * one), the dropped pages read as zeroes, and then every page the device
 * took is free again.
 */
TEST_F(hmm, mthp_device_folio_dontneed)
{
	bool whole = variant->large_folios;
	struct hmm_dmirror_stats s0, s1;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mthp_kb); i++) {
		unsigned int order = kb_order(mthp_kb[i], self->ps);
		unsigned long per = 1UL << order, cut = per + per / 2, p;
		unsigned long drop = 3 * per - cut, freed;
		uint32_t seed = 500 + i;
		struct tbuf *b = mthp_buf(_metadata, self, mthp_kb[i], seed);
		unsigned char *ord = malloc(b->npages);

		ASSERT_NE(NULL, ord);
		mthp_to_device(_metadata, self, b, seed, &s0);
		ASSERT_EQ(0, madvise(tb_page(b, self->ps, cut),
				     drop * self->ps, MADV_DONTNEED));
		for (p = 0; p < b->npages; p++) {
			bool gone = p >= cut && p < 3 * per;

			ord[p] = gone ? HMM_DMIRROR_ORDER_NONE :
				 whole && (p < per || p >= 3 * per) ? order : 0;
		}
		orders_cmp(_metadata, self->fd, b->cpu, b->npages, ord, false);
		snap_all(_metadata, self->fd, tb_page(b, self->ps, cut), drop,
			 SNAP_NONE);
		stats_get(_metadata, self->fd, self->stats, &s1);
		freed = s0.pages_in_use - s1.pages_in_use;
		if (self->stats) {
			ASSERT_LE(whole ? per : drop, freed);
			ASSERT_GE(drop, freed);
		}

		mthp_back_by_cmd(_metadata, self, b, &s0, order,
				 whole ? MTHP_NR - 2 : 0,
				 whole ? cut - per : b->npages - drop);
		ASSERT_EQ(-1, pattern_check(b->cpu, cut * self->ps, seed));
		ASSERT_EQ(-1, bytes_check(tb_page(b, self->ps, cut),
					  drop * self->ps, 0));
		ASSERT_EQ(-1, pattern_check_from(tb_page(b, self->ps, 3 * per),
						 per * self->ps, seed,
						 3 * per * self->ps));
		free(ord);
		tbuf_free(b);
	}
}

/*
 * mremap() of a buffer of device folios, to a place aligned to the folio
 * size and to one a page past such a place (each size in turn, aligned
 * first). The entries move as they are: a private unit's folios are still
 * reported whole at the aligned place, page by page at the other. The CPU
 * reads the data at the new place, which brings a private unit's pages
 * back (whole folios after an aligned move) and frees the device's pages;
 * a coherent unit's pages are read where they are.
 */
TEST_F(hmm, mthp_device_folio_mremap)
{
	bool whole = variant->large_folios;
	struct hmm_dmirror_stats s0, s1;
	unsigned int i;

	for (i = 0; i < 2 * ARRAY_SIZE(mthp_kb); i++) {
		unsigned long kb = mthp_kb[i / 2];
		unsigned int order = kb_order(kb, self->ps);
		bool aligned = !(i % 2);
		uint32_t seed = 510 + i;
		struct tbuf *b = mthp_buf(_metadata, self, kb, seed);
		char *resv, *to;

		mthp_to_device(_metadata, self, b, seed, &s0);
		to = mremap_at(b->cpu, b->size, kb << 10,
			       aligned ? 0 : self->ps, &resv);
		ASSERT_NE(NULL, to) TH_LOG("mremap: %s", strerror(errno));
		b->cpu = to;
		snap_all(_metadata, self->fd, b->cpu, b->npages,
			 snap_local(variant, true));
		orders_all(_metadata, self->fd, b->cpu, b->npages,
			   whole && aligned ? order : 0);

		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed))
			TH_LOG("%s move", aligned ? "aligned" : "unaligned");
		stats_get(_metadata, self->fd, self->stats, &s1);
		if (self->stats && whole && aligned)
			moved_as(_metadata, &s0, &s1, false, order, MTHP_NR, 0);
		if (self->stats) {
			ASSERT_EQ(whole ? b->npages : 0,
				  s1.to_system - s0.to_system);
			ASSERT_EQ(s0.pages_in_use - (whole ? b->npages : 0),
				  s1.pages_in_use);
		}
		if (whole && aligned)
			cpu_folios_are(_metadata, b, self->ps, kb, 0, MTHP_NR,
				       order);
		ASSERT_EQ(0, munmap(resv, b->size + 2 * (kb << 10)));
		tbuf_free(b);
	}
}

/*
 * Device folios in RSS and pagemap. As rss_follows_migration has it for
 * small pages, a page on the device of either kind stays in the process's
 * anonymous RSS, and in its mapping's Rss; pagemap shows a private unit's
 * pages as swap-format entries (device-private entries) and a coherent
 * unit's as present. Back by command, RSS has not moved and every page is
 * present.
 */
TEST_F(hmm, mthp_device_folio_rss_pagemap)
{
	const uint64_t mask = PM_PRESENT | PM_SWAP;
	bool whole = variant->large_folios;
	struct hmm_dmirror_stats s0;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mthp_kb); i++) {
		unsigned int order = kb_order(mthp_kb[i], self->ps);
		uint32_t seed = 520 + i;
		struct tbuf *b = mthp_buf(_metadata, self, mthp_kb[i], seed);
		long r0;

		/* in place before r0: what the driver writes, what calls use */
		tb_touch_dev(b);
		ASSERT_EQ(b->size >> 10, smaps_kb(b->cpu, "Rss"));
		ASSERT_EQ(b->npages, pagemap_count(b->cpu, b->npages, self->ps,
						   mask, PM_PRESENT));
		r0 = rss_anon_pages(self->ps);

		mthp_to_device(_metadata, self, b, seed, &s0);
		ASSERT_EQ(r0, rss_anon_pages(self->ps));
		ASSERT_EQ(b->size >> 10, smaps_kb(b->cpu, "Rss"));
		ASSERT_EQ(b->npages, pagemap_count(b->cpu, b->npages, self->ps,
						   mask,
						   whole ? PM_SWAP : PM_PRESENT));

		mthp_back_by_cmd(_metadata, self, b, &s0, order,
				 whole ? MTHP_NR : 0, whole ? 0 : b->npages);
		ASSERT_EQ(r0, rss_anon_pages(self->ps));
		ASSERT_EQ(b->npages, pagemap_count(b->cpu, b->npages, self->ps,
						   mask, PM_PRESENT));
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed));
		tbuf_free(b);
	}
}

/*
 * munmap() of a whole buffer of device folios frees every page the device
 * took for it, at once and without bringing any back; the range is then
 * unknown to the device.
 */
TEST_F(hmm, mthp_device_folio_munmap)
{
	struct hmm_dmirror_stats s0, s1, s2;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mthp_kb); i++) {
		unsigned int order = kb_order(mthp_kb[i], self->ps);
		uint32_t seed = 530 + i;
		struct tbuf *b = mthp_buf(_metadata, self, mthp_kb[i], seed);

		stats_get(_metadata, self->fd, self->stats, &s0);
		mthp_to_device(_metadata, self, b, seed, &s1);
		ASSERT_EQ(0, munmap(b->cpu, b->size));
		stats_get(_metadata, self->fd, self->stats, &s2);
		if (self->stats) {
			moved_whole(_metadata, variant, &s0, &s1, true, order,
				    MTHP_NR);
			ASSERT_EQ(b->npages, s1.pages_in_use - s0.pages_in_use);
			ASSERT_EQ(s0.pages_in_use, s2.pages_in_use);
			ASSERT_EQ(s1.to_system, s2.to_system);
		}
		snap_all(_metadata, self->fd, b->cpu, b->npages, SNAP_ERR);
		tbuf_free(b);
	}
	device_sane(_metadata, self->fd, self->ps);
}

/* ------------------------------------------------------------------ */
/* File mappings (tmpfs through memfd, and a file in /tmp)             */
/* ------------------------------------------------------------------ */

/*
 * Shared file mapping: device reads see the file, device writes land in
 * the file (read back with pread() and through a second mapping), and the
 * CPU's writes through the second mapping are seen by the device. Page
 * cache cannot move to device memory: a migration moves nothing and reports
 * ENOENT.
 */
static void file_shared_body(struct __test_metadata *_metadata,
			     struct _test_data_hmm *self, bool memfd)
{
	unsigned long npages = 24, i;
	size_t size = npages * self->ps;
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	struct tbuf *b;
	char *other, *tmp;
	int ffd, ret;

	ffd = data_file(memfd, size, 20);
	ASSERT_LE(0, ffd) TH_LOG("data file: %s", strerror(errno));
	b = tbuf_map(self->ps, npages, RW, MAP_SHARED, ffd, 0);
	ASSERT_NE(NULL, b);
	other = mmap(NULL, size, RW, MAP_SHARED, ffd, 0);
	ASSERT_NE(MAP_FAILED, other);
	tmp = malloc(size);
	ASSERT_NE(NULL, tmp);

	stats_get(_metadata, self->fd, self->stats, &s0);
	ret = tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c);
	ASSERT_EQ(-ENOENT, ret)
		TH_LOG("migrating page cache: %d, cpages %llu", ret,
		       (unsigned long long)c.cpages);
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats)
		ASSERT_EQ(0, (s1.pages_in_use - s0.pages_in_use));

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, size, 20));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, b, &c));
	for (i = 0; i < npages; i++)
		ASSERT_TRUE(snap_is_system(b->snap[i]))
			TH_LOG("page %lu: 0x%02x", i, b->snap[i]);

	pattern_fill(b->dev, size, 21);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));
	ASSERT_EQ(npages, c.cpages);
	ASSERT_EQ((ssize_t)size, pread(ffd, tmp, size, 0));
	ASSERT_EQ(-1, pattern_check(tmp, size, 21));
	ASSERT_EQ(-1, pattern_check(other, size, 21));
	snap_all(_metadata, self->fd, b->cpu, npages, SNAP_W);

	pattern_fill(other, size, 22);
	ASSERT_EQ(0, tb_cmd(self->peer, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, size, 22));

	ASSERT_EQ(0, munmap(other, size));
	tbuf_free(b);
	free(tmp);
	close(ffd);
}

/*
 * Private file mapping: the device reads the file; a device write makes
 * private copies (the file keeps its data) which, being anonymous memory,
 * can then migrate to the device and back. Pages still shared with the
 * page cache do not migrate.
 */
static void file_private_body(struct __test_metadata *_metadata,
			      struct _test_data_hmm *self,
			      const struct _fixture_variant_hmm *variant, bool memfd)
{
	unsigned long npages = 24, i;
	size_t size = npages * self->ps;
	struct hmm_dmirror_cmd c;
	struct tbuf *b, *ro;
	char *tmp;
	int ffd, ret;

	ffd = data_file(memfd, size, 23);
	ASSERT_LE(0, ffd) TH_LOG("data file: %s", strerror(errno));
	b = tbuf_map(self->ps, npages, RW, MAP_PRIVATE, ffd, 0);
	ASSERT_NE(NULL, b);
	ro = tbuf_map(self->ps, npages, RW, MAP_PRIVATE, ffd, 0);
	ASSERT_NE(NULL, ro);
	tmp = malloc(size);
	ASSERT_NE(NULL, tmp);

	/* Page cache pages, only read: not migrated. */
	ASSERT_EQ(-1, pattern_check(ro->cpu, size, 23));
	ret = tb_cmd(self->peer, HMM_DMIRROR_MIGRATE_TO_DEV, ro, &c);
	ASSERT_EQ(-ENOENT, ret)
		TH_LOG("migrating page cache: %d", ret);
	ASSERT_EQ(0, tb_cmd(self->peer, HMM_DMIRROR_SNAPSHOT, ro, &c));
	for (i = 0; i < npages; i++)
		ASSERT_EQ(SNAP_R, ro->snap[i]) TH_LOG("page %lu", i);

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, size, 23));

	pattern_fill(b->dev, size, 24);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));
	ASSERT_EQ(npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->cpu, size, 24));
	ASSERT_EQ((ssize_t)size, pread(ffd, tmp, size, 0));
	ASSERT_EQ(-1, pattern_check(tmp, size, 23));
	ASSERT_EQ(-1, pattern_check(ro->cpu, size, 23));

	memset(b->dev, 0, size);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, size, 24));
	snap_all(_metadata, self->fd, b->cpu, npages,
		 snap_local(variant, true));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->cpu, size, 24));
	ASSERT_EQ((ssize_t)size, pread(ffd, tmp, size, 0));
	ASSERT_EQ(-1, pattern_check(tmp, size, 23));

	tbuf_free(b);
	tbuf_free(ro);
	free(tmp);
	close(ffd);
}

TEST_F(hmm, file_shared_memfd)
{
	file_shared_body(_metadata, self, true);
}

TEST_F(hmm, file_shared_tmp)
{
	file_shared_body(_metadata, self, false);
}

TEST_F(hmm, file_private_memfd)
{
	file_private_body(_metadata, self, variant, true);
}

TEST_F(hmm, file_private_tmp)
{
	file_private_body(_metadata, self, variant, false);
}

/* ------------------------------------------------------------------ */
/* Migration                                                           */
/* ------------------------------------------------------------------ */

/*
 * Migrate to the device and back with explicit commands. The device
 * returns the data it now holds, the snapshot shows device pages local to
 * it, migrating again moves nothing, and MIGRATE_TO_SYS brings every page
 * home with its data.
 */
TEST_F(hmm, migrate_roundtrip)
{
	struct hmm_dmirror_stats s0, s1, s2;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 97, RW);

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 30);
	stats_get(_metadata, self->fd, self->stats, &s0);

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 30));
	snap_all(_metadata, self->fd, b->cpu, b->npages,
		 snap_local(variant, true));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats) {
		ASSERT_EQ(b->npages, (s1.to_device - s0.to_device));
		ASSERT_EQ(b->npages, (s1.pages_in_use - s0.pages_in_use));
		ASSERT_EQ(0, (s1.faults - s0.faults));
	}

	/* Already there: nothing moves, the data is still returned. */
	memset(b->dev, 0, b->size);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 30));
	stats_get(_metadata, self->fd, self->stats, &s2);
	if (self->stats)
		ASSERT_EQ(0, (s2.to_device - s1.to_device));

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	snap_all(_metadata, self->fd, b->cpu, b->npages, SNAP_W);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 30));
	stats_get(_metadata, self->fd, self->stats, &s2);
	if (self->stats) {
		ASSERT_EQ(b->npages, (s2.to_system - s1.to_system));
		ASSERT_EQ(0, (s2.pages_in_use - s0.pages_in_use));
	}

	/* Nothing left on the device: a second MIGRATE_TO_SYS is a no-op. */
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(0, c.cpages);
	tbuf_free(b);
}

/*
 * CPU access to migrated memory. A private page cannot be mapped by the
 * CPU, so the fault migrates it home (a device "fault"); a coherent page
 * is CPU memory and is read and written where it is, with no fault.
 */
TEST_F(hmm, migrate_then_cpu_access)
{
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 97, RW);
	unsigned long n = b ? b->npages : 0;
	int m;

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 31);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(n, c.cpages);
	stats_get(_metadata, self->fd, self->stats, &s0);

	/* Read one page first, then everything, then write everything. */
	ASSERT_EQ(-1, pattern_check(b->cpu, self->ps, 31));
	m = snap_one(self->fd, b->cpu);
	ASSERT_EQ(snap_cpu(variant, true), m);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 31));
	pattern_fill(b->cpu, b->size, 32);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 32));

	snap_all(_metadata, self->fd, b->cpu, n,
		 snap_cpu(variant, true));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats && variant->cpu_in_place) {
		ASSERT_EQ(0, (s1.faults - s0.faults));
		ASSERT_EQ(0, (s1.to_system - s0.to_system));
		ASSERT_EQ(0, (s1.pages_in_use - s0.pages_in_use));
	} else if (self->stats) {
		ASSERT_LE(1, (s1.faults - s0.faults));
		ASSERT_GE(n, (s1.faults - s0.faults));
		ASSERT_EQ(n, (s1.to_system - s0.to_system));
		ASSERT_EQ(n, (s0.pages_in_use - s1.pages_in_use));
	}

	/* What is left on the device goes home on request. */
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(variant->cpu_in_place ? n : 0, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 32));
	tbuf_free(b);
}

/*
 * Device eviction (HMM_DMIRROR_RELEASE) moves every page of the device
 * back to system memory with its data, and the device can be used again
 * afterwards.
 */
TEST_F(hmm, migrate_then_release)
{
	struct hmm_dmirror_stats s0, s1, s2;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 97, RW);

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 33);
	stats_get(_metadata, self->fd, self->stats, &s0);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	stats_get(_metadata, self->fd, self->stats, &s1);

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_RELEASE, b, &c));
	snap_all(_metadata, self->fd, b->cpu, b->npages, SNAP_W);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 33));
	stats_get(_metadata, self->fd, self->stats, &s2);
	if (self->stats) {
		ASSERT_LE(1, (s2.evictions - s1.evictions));
		ASSERT_LE(b->npages, (s2.to_system - s1.to_system));
		ASSERT_EQ(0, s2.pages_in_use);
		ASSERT_EQ(b->npages, (s1.pages_in_use - s0.pages_in_use));
	}

	pattern_fill(b->cpu, b->size, 34);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 34));
	snap_all(_metadata, self->fd, b->cpu, b->npages,
		 snap_local(variant, true));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 34));
	tbuf_free(b);
}

/*
 * A partially populated range migrates whole: written pages keep their
 * data, never-touched pages and zero-page mappings arrive as zeroes, and
 * every page ends up writable device memory.
 */
TEST_F(hmm, migrate_mixed_population)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	size_t q = 4 * self->ps;
	unsigned long i;

	ASSERT_NE(NULL, b);
	pattern_fill_from(b->cpu, q, 35, 0);
	for (i = 8; i < 12; i++)
		cpu_touch(tb_page(b, self->ps, i));
	pattern_fill_from(b->cpu + 3 * q, q, 35, 3 * q);
	snap_all(_metadata, self->fd, tb_page(b, self->ps, 4), 4, SNAP_NONE);
	snap_all(_metadata, self->fd, tb_page(b, self->ps, 8), 4,
		 SNAP_ZERO_R);

	memset(b->dev, 0xcc, b->size);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(16, c.cpages);
	snap_all(_metadata, self->fd, b->cpu, 16, snap_local(variant, true));
	ASSERT_EQ(-1, pattern_check_from(b->dev, q, 35, 0));
	ASSERT_EQ(-1, bytes_check(b->dev + q, 2 * q, 0));
	ASSERT_EQ(-1, pattern_check_from(b->dev + 3 * q, q, 35, 3 * q));

	ASSERT_EQ(-1, pattern_check_from(b->cpu, q, 35, 0));
	ASSERT_EQ(-1, bytes_check(b->cpu + q, 2 * q, 0));
	ASSERT_EQ(-1, pattern_check_from(b->cpu + 3 * q, q, 35, 3 * q));
	tbuf_free(b);
}

/*
 * A range spanning several VMAs: read-write and read-only pieces migrate
 * together, the read-only pages staying read-only on the device. A
 * PROT_NONE piece stops the migration with EINVAL and nothing beyond it is
 * moved.
 */
TEST_F(hmm, migrate_across_vmas)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 12, RW);
	unsigned char want[12];
	unsigned long i;

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 36);
	ASSERT_EQ(0, mprotect(tb_page(b, self->ps, 4), 4 * self->ps,
			      PROT_READ));

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(12, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 36));
	for (i = 0; i < 12; i++)
		want[i] = snap_local(variant, i < 4 || i >= 8);
	snap_cmp(_metadata, self->fd, b->cpu, 12, want, false);

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(12, c.cpages);
	for (i = 0; i < 12; i++)
		want[i] = (i < 4 || i >= 8) ? SNAP_W : SNAP_R;
	snap_cmp(_metadata, self->fd, b->cpu, 12, want, false);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 36));

	ASSERT_EQ(0, mprotect(tb_page(b, self->ps, 4), 4 * self->ps,
			      PROT_NONE));
	ASSERT_EQ(-EINVAL, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b,
				  &c));
	snap_all(_metadata, self->fd, tb_page(b, self->ps, 4), 4, SNAP_ERR);
	snap_all(_metadata, self->fd, tb_page(b, self->ps, 8), 4, SNAP_W);
	ASSERT_EQ(-EINVAL, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b,
				  &c));
	ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b,
				  self->ps, 0, 4, &c));
	snap_all(_metadata, self->fd, b->cpu, 4, SNAP_W);
	ASSERT_EQ(-1, pattern_check(b->cpu, 4 * self->ps, 36));
	ASSERT_EQ(-1, pattern_check_from(b->cpu + 8 * self->ps, 4 * self->ps,
					 36, 8 * self->ps));
	tbuf_free(b);
}

/*
 * Shared anonymous memory is shmem: it cannot move to device memory, and
 * the attempt leaves it in place.
 */
TEST_F(hmm, migrate_shared_anon_refused)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_map(self->ps, 8, RW, MAP_SHARED | MAP_ANONYMOUS,
				  -1, 0);
	int ret;

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 37);
	ret = tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c);
	ASSERT_EQ(-ENOENT, ret)
		TH_LOG("MIGRATE_TO_DEV of shared memory: %d", ret);
	snap_all(_metadata, self->fd, b->cpu, 8, SNAP_W);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 37));
	tbuf_free(b);
}

/*
 * Repeated round trips, each moved home a different way (explicit command
 * for coherent pages, CPU writes for private ones), keep the data and the
 * counters consistent.
 */
TEST_F(hmm, migrate_repeatedly)
{
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 70, RW);
	unsigned int round, rounds = 8;

	ASSERT_NE(NULL, b);
	stats_get(_metadata, self->fd, self->stats, &s0);
	for (round = 0; round < rounds; round++) {
		pattern_fill(b->cpu, b->size, 40 + round);
		ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b,
				    &c));
		ASSERT_EQ(b->npages, c.cpages);
		ASSERT_EQ(-1, pattern_check(b->dev, b->size, 40 + round));
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 40 + round));
		ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b,
				    &c));
		ASSERT_EQ(variant->cpu_in_place ? b->npages : 0, c.cpages);
	}
	snap_all(_metadata, self->fd, b->cpu, b->npages, SNAP_W);
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats) {
		ASSERT_EQ(rounds * b->npages, (s1.to_device - s0.to_device));
		ASSERT_EQ(rounds * b->npages, (s1.to_system - s0.to_system));
		ASSERT_EQ(0, (s1.pages_in_use - s0.pages_in_use));
	}
	tbuf_free(b);
}

/*
 * Two devices of the same kind each hold half of a range. Each sees its
 * own half as local and the other's as remote; MIGRATE_TO_SYS through one
 * device brings back only its own pages.
 */
TEST_F(hmm, migrate_to_two_devices)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	unsigned char want[16];
	unsigned long i;

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 50);
	ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b,
				  self->ps, 0, 8, &c));
	ASSERT_EQ(8, c.cpages);
	ASSERT_EQ(0, tb_cmd_range(self->peer, HMM_DMIRROR_MIGRATE_TO_DEV, b,
				  self->ps, 8, 8, &c));
	ASSERT_EQ(8, c.cpages);

	for (i = 0; i < 16; i++)
		want[i] = i < 8 ? snap_local(variant, true) :
				  snap_remote(variant, true);
	snap_cmp(_metadata, self->fd, b->cpu, 16, want, false);
	for (i = 0; i < 16; i++)
		want[i] = i >= 8 ? snap_local(variant, true) :
				   snap_remote(variant, true);
	snap_cmp(_metadata, self->peer, b->cpu, 16, want, false);

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(8, c.cpages);
	for (i = 0; i < 16; i++)
		want[i] = i < 8 ? SNAP_W : snap_remote(variant, true);
	snap_cmp(_metadata, self->fd, b->cpu, 16, want, false);

	ASSERT_EQ(0, tb_cmd(self->peer, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(8, c.cpages);
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_W);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 50));
	tbuf_free(b);
}

/*
 * A private page and a coherent page in one range, on two devices of
 * different kinds: each device's snapshot tells them apart.
 */
TEST(migrate_to_both_kinds)
{
	size_t ps = sysconf(_SC_PAGESIZE);
	int priv, coh;
	struct hmm_dmirror_cmd c;
	struct tbuf *b;

	if (!coherent_present())
		SKIP(return, "no coherent devices (load test_hmm with spm_addr_dev0/1)");
	priv = dev_open(0);
	coh = dev_open(2);
	ASSERT_LE(0, priv);
	ASSERT_LE(0, coh);
	b = tbuf_anon(ps, 3, RW);
	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 51);
	ASSERT_EQ(0, tb_cmd_range(priv, HMM_DMIRROR_MIGRATE_TO_DEV, b, ps,
				  0, 1, &c));
	ASSERT_EQ(0, tb_cmd_range(coh, HMM_DMIRROR_MIGRATE_TO_DEV, b, ps,
				  1, 1, &c));

	ASSERT_EQ(0, tb_cmd(priv, HMM_DMIRROR_SNAPSHOT, b, &c));
	ASSERT_EQ(HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | SNAP_W, b->snap[0]);
	ASSERT_EQ(HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE | SNAP_W, b->snap[1]);
	ASSERT_EQ(SNAP_W, b->snap[2]);
	ASSERT_EQ(0, tb_cmd(coh, HMM_DMIRROR_SNAPSHOT, b, &c));
	ASSERT_EQ(SNAP_NONE, b->snap[0]);
	ASSERT_EQ(HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | SNAP_W, b->snap[1]);
	ASSERT_EQ(SNAP_W, b->snap[2]);

	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 51));
	ASSERT_EQ(0, tb_cmd(coh, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(1, c.cpages);
	tbuf_free(b);
	close(priv);
	close(coh);
}

/* ------------------------------------------------------------------ */
/* fork() and copy-on-write                                            */
/* ------------------------------------------------------------------ */

/*
 * After fork() both processes share the pages copy-on-write. Device
 * writes in the child (through its own open file) and CPU writes break
 * the sharing in the child only: the parent keeps its data, and its own
 * mirror reads it back.
 */
TEST_F(hmm, fork_cow_writes)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	pid_t pid;

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 60);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int fd = dev_open(variant->unit);

		CHILD_CHECK(fd >= 0);
		CHILD_CHECK(pattern_check(b->cpu, b->size, 60) < 0);
		CHILD_CHECK(!tb_cmd(fd, HMM_DMIRROR_READ, b, &c));
		CHILD_CHECK(pattern_check(b->dev, b->size, 60) < 0);
		pattern_fill(b->dev, 8 * self->ps, 61);
		CHILD_CHECK(!tb_cmd_range(fd, HMM_DMIRROR_WRITE, b, self->ps,
					  0, 8, &c));
		CHILD_CHECK(pattern_check(b->cpu, 8 * self->ps, 61) < 0);
		pattern_fill_from(b->cpu + 8 * self->ps, 8 * self->ps, 62,
				  8 * self->ps);
		CHILD_CHECK(!tb_cmd(fd, HMM_DMIRROR_READ, b, &c));
		CHILD_CHECK(pattern_check(b->dev, 8 * self->ps, 61) < 0);
		CHILD_CHECK(pattern_check_from(b->dev + 8 * self->ps,
					       8 * self->ps, 62,
					       8 * self->ps) < 0);
		_exit(0);
	}
	ASSERT_EQ(0, child_wait(pid));

	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 60));
	ASSERT_EQ(0, dev_read_check(self->fd, b, &c, 60));
	pattern_fill(b->dev, b->size, 63);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 63));
	tbuf_free(b);
}

/*
 * Shared anonymous memory stays shared across fork(): a device write in
 * the child is what the parent's CPU and device then read.
 */
TEST_F(hmm, fork_shared_writes)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_map(self->ps, 16, RW, MAP_SHARED | MAP_ANONYMOUS,
				  -1, 0);
	pid_t pid;

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 64);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int fd = dev_open(variant->unit);

		CHILD_CHECK(fd >= 0);
		pattern_fill(b->dev, b->size, 65);
		CHILD_CHECK(!tb_cmd(fd, HMM_DMIRROR_WRITE, b, &c));
		CHILD_CHECK(c.cpages == b->npages);
		_exit(0);
	}
	ASSERT_EQ(0, child_wait(pid));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 65));
	ASSERT_EQ(0, dev_read_check(self->fd, b, &c, 65));
	tbuf_free(b);
}

/*
 * fork() while the parent's pages are in device memory: the child reads
 * the parent's data and its writes stay its own; the parent keeps its
 * data and can write it again.
 */
TEST_F(hmm, fork_with_device_pages_in_parent)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	pid_t pid;

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 66);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(16, c.cpages);

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		child_rewrite_exit(b, 66, 67);
	ASSERT_EQ(0, child_wait(pid));

	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 66));
	pattern_fill(b->cpu, b->size, 68);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 68));
	ASSERT_EQ(0, dev_read_check(self->peer, b, &c, 68));
	tbuf_free(b);
}

/*
 * The other direction: after fork() the child migrates the still shared
 * pages to its device. The parent reads its (identical) data while the
 * child holds them, then writes its own; the child's view is unaffected.
 */
TEST_F(hmm, fork_with_device_pages_in_child)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	int to_child[2], to_parent[2];
	char tok = 0;
	pid_t pid;

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 69);
	ASSERT_EQ(0, pipe(to_child));
	ASSERT_EQ(0, pipe(to_parent));

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int fd = dev_open(variant->unit);

		CHILD_CHECK(fd >= 0);
		CHILD_CHECK(!tb_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
		CHILD_CHECK(c.cpages == b->npages);
		CHILD_CHECK(pattern_check(b->dev, b->size, 69) < 0);
		CHILD_CHECK(write(to_parent[1], "m", 1) == 1);
		CHILD_CHECK(read(to_child[0], &tok, 1) == 1);
		child_rewrite_exit(b, 69, 70);
	}
	ASSERT_EQ(1, read(to_parent[0], &tok, 1));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 69));
	pattern_fill(b->cpu, b->size, 71);
	ASSERT_EQ(1, write(to_child[1], "g", 1));
	ASSERT_EQ(0, child_wait(pid));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 71));
	tbuf_free(b);
}

/* ------------------------------------------------------------------ */
/* Address space changes under mirrored or migrated memory             */
/* ------------------------------------------------------------------ */

/*
 * mremap() moves device pages with the mapping: the new address shows
 * them, the old one is gone. A mirrored (not migrated) range is read at
 * its new address and reading the old one fails.
 */
TEST_F(hmm, mremap_device_pages)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	struct tbuf *dst = tbuf_anon(self->ps, 16, PROT_NONE);
	char *q;

	ASSERT_NE(NULL, b);
	ASSERT_NE(NULL, dst);
	pattern_fill(b->cpu, b->size, 72);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(16, c.cpages);

	q = mremap(b->cpu, b->size, b->size, MREMAP_MAYMOVE | MREMAP_FIXED,
		   dst->cpu);
	ASSERT_EQ(dst->cpu, q);
	snap_all(_metadata, self->fd, q, 16, snap_local(variant, true));
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_ERR);
	ASSERT_EQ(-EFAULT, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(0, dmirror(self->peer, HMM_DMIRROR_READ, q, 16, dst->dev,
			     &c));
	ASSERT_EQ(-1, pattern_check(dst->dev, dst->size, 72));
	ASSERT_EQ(-1, pattern_check(q, dst->size, 72));

	/* Mirrored only. */
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, q, 16,
			     NULL, &c));
	ASSERT_EQ(b->cpu, mmap(b->cpu, b->size, RW,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	pattern_fill(b->cpu, b->size, 73);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(0, munmap(q, dst->size));
	q = mremap(b->cpu, b->size, b->size, MREMAP_MAYMOVE | MREMAP_FIXED,
		   dst->cpu);
	ASSERT_EQ(dst->cpu, q);
	ASSERT_EQ(-EFAULT, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_READ, q, 16, dst->dev,
			     &c));
	ASSERT_EQ(-1, pattern_check(dst->dev, dst->size, 73));
	tbuf_free(b);
	tbuf_free(dst);
}

/*
 * mprotect() on migrated memory: the device pages lose write permission
 * with the mapping (and keep it lost until written again), PROT_NONE makes
 * them unreachable for everyone, and with read-write restored the CPU
 * writes them. Private pages touched by the CPU come home on the way;
 * coherent ones never move.
 */
TEST_F(hmm, mprotect_device_pages)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	size_t half;

	ASSERT_NE(NULL, b);
	half = b->size / 2;
	pattern_fill(b->cpu, b->size, 78);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(16, c.cpages);

	ASSERT_EQ(0, mprotect(b->cpu, b->size, PROT_READ));
	snap_all(_metadata, self->fd, b->cpu, 16, snap_local(variant, false));
	ASSERT_EQ(-1, pattern_check(b->cpu, half, 78));
	snap_all(_metadata, self->fd, b->cpu, 8,
		 snap_cpu(variant, false));
	snap_all(_metadata, self->fd, b->cpu + half, 8,
		 snap_local(variant, false));

	ASSERT_EQ(0, mprotect(b->cpu, b->size, PROT_NONE));
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_ERR);
	ASSERT_EQ(-EFAULT, tb_cmd(self->peer, HMM_DMIRROR_READ, b, &c));

	ASSERT_EQ(0, mprotect(b->cpu, b->size, RW));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 78));
	pattern_fill(b->cpu, b->size, 79);
	snap_all(_metadata, self->fd, b->cpu, 16,
		 snap_cpu(variant, true));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(variant->cpu_in_place ? 16 : 0, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 79));
	tbuf_free(b);
}

/*
 * MADV_DONTNEED drops device pages like any other: the range reads as
 * fresh zeroes and the device gets its pages back. On a mirrored range
 * the device sees the zeroes too.
 */
TEST_F(hmm, dontneed_device_pages)
{
	struct hmm_dmirror_stats s0, s1, s2;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	size_t half;

	ASSERT_NE(NULL, b);
	half = b->size / 2;
	pattern_fill(b->cpu, b->size, 74);
	stats_get(_metadata, self->fd, self->stats, &s0);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(16, c.cpages);
	stats_get(_metadata, self->fd, self->stats, &s1);

	ASSERT_EQ(0, madvise(b->cpu, half, MADV_DONTNEED));
	snap_all(_metadata, self->fd, b->cpu, 8, SNAP_NONE);
	snap_all(_metadata, self->fd, b->cpu + half, 8,
		 snap_local(variant, true));
	stats_get(_metadata, self->fd, self->stats, &s2);
	if (self->stats) {
		ASSERT_EQ(16, (s1.pages_in_use - s0.pages_in_use));
		ASSERT_EQ(8, (s1.pages_in_use - s2.pages_in_use));
		ASSERT_EQ(0, (s2.to_system - s1.to_system));
	}
	ASSERT_EQ(-1, bytes_check(b->cpu, half, 0));
	ASSERT_EQ(-1, pattern_check_from(b->cpu + half, half, 74, half));

	/* Mirrored range. */
	pattern_fill(b->cpu, b->size, 75);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(0, madvise(b->cpu, b->size, MADV_DONTNEED));
	memset(b->dev, 0xcc, b->size);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(1, c.faults);
	ASSERT_EQ(-1, bytes_check(b->dev, b->size, 0));
	tbuf_free(b);
}

/*
 * munmap() of device pages frees them; the range is then unknown to the
 * device (EFAULT to read, EINVAL to migrate, errors in a snapshot).
 */
TEST_F(hmm, munmap_device_pages)
{
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 76);
	stats_get(_metadata, self->fd, self->stats, &s0);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(0, munmap(b->cpu, b->size));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats) {
		ASSERT_EQ(0, (s1.pages_in_use - s0.pages_in_use));
		ASSERT_EQ(16, (s1.to_device - s0.to_device));
	}
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_ERR);
	ASSERT_EQ(-EFAULT, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(-EFAULT, tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));
	ASSERT_EQ(-EINVAL, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b,
				  &c));
	ASSERT_EQ(-EINVAL, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b,
				  &c));
	device_sane(_metadata, self->fd, self->ps);
	tbuf_free(b);
}

struct unmap_race {
	int fd;
	char *addr;
	unsigned long npages;
	char *io;
	bool stop;
	unsigned long done, faulted;
	int unexpected;
};

static void *unmap_race_reader(void *arg)
{
	struct unmap_race *r = arg;
	struct hmm_dmirror_cmd c;
	int ret;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		ret = dmirror(r->fd, HMM_DMIRROR_READ, r->addr, r->npages,
			      r->io, &c);
		if (!ret)
			r->done++;
		else if (ret == -EFAULT || ret == -EBUSY)
			r->faulted++;
		else
			r->unexpected = ret;
		if (r->unexpected)
			break;
	}
	return NULL;
}

/*
 * Tear the mapping down and put it back over and over while another
 * thread reads it through the device: every read either completes or
 * fails cleanly (EFAULT, or EBUSY if it kept losing the race).
 */
TEST_F_TIMEOUT(hmm, munmap_races_device_reads, 120)
{
	struct unmap_race r = { .fd = self->fd, .npages = 32 };
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 32, RW);
	pthread_t th;
	int i;
	void *p;

	ASSERT_NE(NULL, b);
	r.addr = b->cpu;
	r.io = b->dev;
	pattern_fill(b->cpu, b->size, 77);
	ASSERT_EQ(0, pthread_create(&th, NULL, unmap_race_reader, &r));
	for (i = 0; i < 300; i++) {
		ASSERT_EQ(0, munmap(b->cpu, b->size));
		p = mmap(b->cpu, b->size, RW,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		ASSERT_EQ(b->cpu, p);
		pattern_fill(b->cpu, b->size, 77);
		/*
		 * Migrate through the other device: the reader's own device
		 * must not meet its own private pages behind its back (see
		 * read_own_private_pages_after_invalidation).
		 */
		if (i % 3 == 0)
			tb_cmd(self->peer, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c);
	}
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	ASSERT_EQ(0, pthread_join(th, NULL));
	ASSERT_EQ(0, r.unexpected);
	ASSERT_LT(0, r.done + r.faulted);

	memset(b->dev, 0, b->size);
	ASSERT_EQ(0, dmirror(self->peer, HMM_DMIRROR_READ, b->cpu, 32,
			     b->dev, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 77));
	tbuf_free(b);
}

/* ------------------------------------------------------------------ */
/* Process exit and file release with device pages                     */
/* ------------------------------------------------------------------ */

/*
 * A process that exits holding device pages (and its open file) gives
 * them all back: the device's pages in use return to where they were and
 * the device keeps working.
 */
TEST_F(hmm, exit_with_device_pages)
{
	struct hmm_dmirror_stats s0, s1;
	pid_t pid;

	stats_get(_metadata, self->fd, self->stats, &s0);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct hmm_dmirror_cmd c;
		int fd = dev_open(variant->unit);
		struct tbuf *b = tbuf_anon(self->ps, 64, RW);

		CHILD_CHECK(fd >= 0 && b);
		pattern_fill(b->cpu, b->size, 80);
		CHILD_CHECK(!tb_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
		CHILD_CHECK(c.cpages == 64);
		_exit(0);
	}
	ASSERT_EQ(0, child_wait(pid));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats) {
		ASSERT_EQ(s0.pages_in_use, s1.pages_in_use);
		ASSERT_EQ(64, (s1.to_device - s0.to_device));
	}
	device_sane(_metadata, self->fd, self->ps);
}

/*
 * The same when the process is killed while it holds device pages and
 * exclusive access to other pages.
 */
TEST_F(hmm, killed_with_device_pages_and_exclusive)
{
	struct hmm_dmirror_stats s0, s1;
	pid_t pid;

	stats_get(_metadata, self->fd, self->stats, &s0);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct hmm_dmirror_cmd c;
		int fd = dev_open(variant->unit);
		struct tbuf *b = tbuf_anon(self->ps, 32, RW);

		CHILD_CHECK(fd >= 0 && b);
		pattern_fill(b->cpu, b->size, 81);
		CHILD_CHECK(!tb_cmd_range(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b,
					  self->ps, 0, 16, &c));
		CHILD_CHECK(!tb_cmd_range(fd, HMM_DMIRROR_EXCLUSIVE, b,
					  self->ps, 16, 16, &c));
		kill(getpid(), SIGKILL);
		_exit(1);
	}
	ASSERT_EQ(128 + SIGKILL, child_wait(pid));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats)
		ASSERT_EQ(s0.pages_in_use, s1.pages_in_use);
	device_sane(_metadata, self->fd, self->ps);
}

struct ioctl_loop {
	int fd;
	unsigned long req;
	struct tbuf *b;
};

static void *ioctl_loop_fn(void *arg)
{
	struct ioctl_loop *l = arg;
	struct hmm_dmirror_cmd c;

	for (;;) {
		tb_cmd(l->fd, l->req, l->b, &c);
		if (l->req == HMM_DMIRROR_MIGRATE_TO_DEV)
			tb_cmd(l->fd, HMM_DMIRROR_MIGRATE_TO_SYS, l->b, &c);
	}
	return NULL;
}

/*
 * A process exits while its threads are inside device commands (reads on
 * one device, migrations to and from another): the exit completes, no
 * device page stays in use, and the devices keep working.
 */
TEST_F(hmm, exit_during_device_commands)
{
	struct hmm_dmirror_stats s0, s1, p0, p1;
	pid_t pid;

	stats_get(_metadata, self->fd, self->stats, &s0);
	stats_get(_metadata, self->peer, self->stats, &p0);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct ioctl_loop rd, mig;
		struct tbuf *b = tbuf_anon(self->ps, 64, RW);
		pthread_t t;

		CHILD_CHECK(b);
		pattern_fill(b->cpu, b->size, 83);
		rd.fd = dev_open(variant->unit);
		rd.req = HMM_DMIRROR_READ;
		rd.b = b;
		mig.fd = dev_open(variant->peer_unit);
		mig.req = HMM_DMIRROR_MIGRATE_TO_DEV;
		mig.b = b;
		CHILD_CHECK(rd.fd >= 0 && mig.fd >= 0);
		CHILD_CHECK(!pthread_create(&t, NULL, ioctl_loop_fn, &rd));
		CHILD_CHECK(!pthread_create(&t, NULL, ioctl_loop_fn, &mig));
		usleep(200 * 1000);
		_exit(0);
	}
	ASSERT_EQ(0, child_wait(pid));
	stats_get(_metadata, self->fd, self->stats, &s1);
	stats_get(_metadata, self->peer, self->stats, &p1);
	if (self->stats) {
		ASSERT_EQ(s0.pages_in_use, s1.pages_in_use);
		ASSERT_EQ(p0.pages_in_use, p1.pages_in_use);
	}
	device_sane(_metadata, self->fd, self->ps);
	device_sane(_metadata, self->peer, self->ps);
}

/*
 * An open file mirrors the address space of the process that opened it.
 * A child that inherits it across fork() and uses it reaches the parent's
 * memory, never its own pages.
 */
TEST_F(hmm, inherited_file_mirrors_opener)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 4, RW);
	pid_t pid;

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 84);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		pattern_fill(b->cpu, b->size, 85);
		memset(b->dev, 0, b->size);
		CHILD_CHECK(!tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
		CHILD_CHECK(pattern_check(b->dev, b->size, 84) < 0);
		pattern_fill(b->dev, b->size, 86);
		CHILD_CHECK(!tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));
		CHILD_CHECK(pattern_check(b->cpu, b->size, 85) < 0);
		_exit(0);
	}
	ASSERT_EQ(0, child_wait(pid));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 86));
	tbuf_free(b);
}

/*
 * Closing the file through which pages were migrated, while they are
 * still mapped, loses no data: the process reads it all afterwards.
 */
TEST_F(hmm, close_with_device_pages)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 40, RW);
	int fd = dev_open(variant->unit);

	ASSERT_NE(NULL, b);
	ASSERT_LE(0, fd);
	pattern_fill(b->cpu, b->size, 82);
	ASSERT_EQ(0, tb_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(40, c.cpages);
	ASSERT_EQ(0, close(fd));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 82));
	ASSERT_EQ(0, dev_read_check(self->peer, b, &c, 82));
	tbuf_free(b);
}

/* ------------------------------------------------------------------ */
/* Several devices on one page, and snapshots                          */
/* ------------------------------------------------------------------ */

/*
 * Two devices mirror the same pages and both follow CPU and device
 * writes. When one of them migrates the pages, the other reading them
 * gets the data: a private page is faulted home for it (a fault on the
 * owning device), a coherent page is read in place.
 */
TEST_F(hmm, two_devices_one_page)
{
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 8, RW);

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 90);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 90));
	ASSERT_EQ(0, dev_read_check(self->peer, b, &c, 90));

	pattern_fill(b->cpu, b->size, 91);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 91));
	pattern_fill(b->dev, b->size, 92);
	ASSERT_EQ(0, tb_cmd(self->peer, HMM_DMIRROR_WRITE, b, &c));
	ASSERT_EQ(0, dev_read_check(self->fd, b, &c, 92));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 92));

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(8, c.cpages);
	stats_get(_metadata, self->fd, self->stats, &s0);
	ASSERT_EQ(0, dev_read_check(self->peer, b, &c, 92));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (variant->cpu_in_place) {
		snap_all(_metadata, self->fd, b->cpu, 8,
			 snap_local(variant, true));
		snap_all(_metadata, self->peer, b->cpu, 8,
			 snap_remote(variant, true));
		if (self->stats)
			ASSERT_EQ(0, (s1.faults - s0.faults));
	} else {
		snap_all(_metadata, self->fd, b->cpu, 8, SNAP_W);
		if (self->stats) {
			ASSERT_LE(1, (s1.faults - s0.faults));
			ASSERT_EQ(8, (s1.to_system - s0.to_system));
		}
	}
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 92));
	tbuf_free(b);
}

/*
 * One snapshot over a range holding every kind of page the driver can
 * describe, from both devices' point of view. Taking it faults nothing
 * in: device pages stay where they are and exclusive access survives.
 */
TEST_F(hmm, snapshot_page_kinds)
{
	enum {
		K_HOLE, K_PROT_NONE, K_UNTOUCHED, K_ZERO, K_RO, K_RW,
		K_LOCAL, K_REMOTE, K_LOCAL_RO, K_EXCLUSIVE, K_SHARED_FILE,
		K_PRIVATE_FILE, K_NR
	};
	size_t ps = self->ps;
	unsigned char want[K_NR];
	struct hmm_dmirror_cmd c;
	char *r, *io = malloc(ps);
	int ffd, i;

	ASSERT_NE(NULL, io);
	r = mmap(NULL, K_NR * ps, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, r);
	ASSERT_NE(MAP_FAILED, mmap(r + K_UNTOUCHED * ps,
				   (K_PRIVATE_FILE - K_UNTOUCHED) * ps, RW,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				   -1, 0));
	ASSERT_EQ(0, madvise(r + K_UNTOUCHED * ps,
			     (K_SHARED_FILE - K_UNTOUCHED) * ps,
			     MADV_NOHUGEPAGE));
	ASSERT_EQ(0, munmap(r + K_HOLE * ps, ps));

	cpu_touch(r + K_ZERO * ps);
	pattern_fill(r + K_RO * ps, ps, 100);
	ASSERT_EQ(0, mprotect(r + K_RO * ps, ps, PROT_READ));
	pattern_fill(r + K_RW * ps, 5 * ps, 101);
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV,
			     r + K_LOCAL * ps, 1, io, &c));
	ASSERT_EQ(0, dmirror(self->peer, HMM_DMIRROR_MIGRATE_TO_DEV,
			     r + K_REMOTE * ps, 1, io, &c));
	ASSERT_EQ(0, mprotect(r + K_LOCAL_RO * ps, ps, PROT_READ));
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV,
			     r + K_LOCAL_RO * ps, 1, io, &c));
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_EXCLUSIVE,
			     r + K_EXCLUSIVE * ps, 1, io, &c));

	ffd = data_file(true, 2 * ps, 102);
	ASSERT_LE(0, ffd);
	ASSERT_NE(MAP_FAILED, mmap(r + K_SHARED_FILE * ps, ps, RW,
				   MAP_SHARED | MAP_FIXED, ffd, 0));
	ASSERT_NE(MAP_FAILED, mmap(r + K_PRIVATE_FILE * ps, ps, RW,
				   MAP_PRIVATE | MAP_FIXED, ffd, ps));
	r[K_SHARED_FILE * ps] = 1;
	cpu_touch(r + K_PRIVATE_FILE * ps);

	want[K_HOLE] = SNAP_ERR;
	want[K_PROT_NONE] = SNAP_ERR;
	want[K_UNTOUCHED] = SNAP_NONE;
	want[K_ZERO] = SNAP_ZERO_R;
	want[K_RO] = SNAP_R;
	want[K_RW] = SNAP_W;
	want[K_LOCAL] = snap_local(variant, true);
	want[K_REMOTE] = snap_remote(variant, true);
	want[K_LOCAL_RO] = snap_local(variant, false);
	/* A device-exclusive entry is not a present CPU mapping. */
	want[K_EXCLUSIVE] = SNAP_NONE;
	want[K_SHARED_FILE] = SNAP_W;
	want[K_PRIVATE_FILE] = SNAP_R;
	snap_cmp(_metadata, self->fd, r, K_NR, want, false);

	want[K_LOCAL] = snap_remote(variant, true);
	want[K_REMOTE] = snap_local(variant, true);
	want[K_LOCAL_RO] = snap_remote(variant, false);
	snap_cmp(_metadata, self->peer, r, K_NR, want, false);

	/* Nothing moved, exclusive access still held. */
	ASSERT_EQ(snap_local(variant, true), snap_one(self->fd,
						      r + K_LOCAL * ps));
	ASSERT_EQ(-EPERM, dmirror(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE,
				  r + K_EXCLUSIVE * ps, 1, NULL, &c));

	for (i = 0; i < 5; i++)
		ASSERT_EQ(-1, pattern_check_from(r + (K_RW + i) * ps, ps, 101,
						 i * ps));
	ASSERT_EQ(-1, pattern_check(r + K_RO * ps, ps, 100));
	ASSERT_EQ(0, munmap(r, K_NR * ps));
	close(ffd);
	free(io);
}

/*
 * One device command over three VMAs and a hole: a read-write mapping, a
 * hole, a read-only mapping. Faulting commands fail on the hole (EFAULT)
 * and a write fails on the read-only part (EPERM); a snapshot describes
 * each piece. Once the hole is mapped (and never touched) a device read
 * faults it in as the zero page and returns every piece's data.
 */
TEST_F(hmm, read_across_vmas_and_holes)
{
	const unsigned long n = 8, npages = 3 * n;
	size_t ps = self->ps, piece = n * ps;
	unsigned char want[3 * 8];
	struct hmm_dmirror_cmd c;
	char *r, *io = malloc(npages * ps);
	unsigned long i;

	ASSERT_NE(NULL, io);
	r = mmap(NULL, npages * ps, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, r);
	ASSERT_EQ(0, madvise(r, npages * ps, MADV_NOHUGEPAGE));
	pattern_fill(r, piece, 150);
	pattern_fill(r + 2 * piece, piece, 151);
	ASSERT_EQ(0, mprotect(r + 2 * piece, piece, PROT_READ));
	ASSERT_EQ(0, munmap(r + piece, piece));

	/* each mapped piece alone is fine */
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_READ, r, n, io, &c));
	ASSERT_EQ(-1, pattern_check(io, piece, 150));
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_READ, r + 2 * piece, n,
			     io, &c));
	ASSERT_EQ(-1, pattern_check(io, piece, 151));

	/* the hole stops reads and writes, the read-only piece writes */
	ASSERT_EQ(-EFAULT, dmirror(self->fd, HMM_DMIRROR_READ, r, npages, io,
				   &c));
	/*
	 * A failed write may have written the pages before the hole (as a
	 * short write(2) would): give it the data they already hold.
	 */
	pattern_fill(io, piece, 150);
	ASSERT_EQ(-EFAULT, dmirror(self->fd, HMM_DMIRROR_WRITE, r, npages, io,
				   &c));
	for (i = 0; i < n; i++) {
		want[i] = SNAP_W;
		want[n + i] = SNAP_ERR;
		want[2 * n + i] = SNAP_R;
	}
	snap_cmp(_metadata, self->fd, r, npages, want, false);

	/* map the hole, untouched: reads fault it in as the zero page */
	ASSERT_EQ(r + piece, mmap(r + piece, piece, RW,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				  -1, 0));
	for (i = 0; i < n; i++)
		want[n + i] = SNAP_NONE;
	snap_cmp(_metadata, self->fd, r, npages, want, false);
	memset(io, 0xaa, npages * ps);
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_READ, r, npages, io, &c));
	ASSERT_EQ(npages, c.cpages);
	ASSERT_EQ(1, c.faults);
	ASSERT_EQ(-1, pattern_check(io, piece, 150));
	ASSERT_EQ(-1, bytes_check(io + piece, piece, 0));
	ASSERT_EQ(-1, pattern_check(io + 2 * piece, piece, 151));
	for (i = 0; i < n; i++)
		want[n + i] = SNAP_ZERO_R;
	snap_cmp(_metadata, self->fd, r, npages, want, false);

	/* a write over all three still stops at the read-only piece */
	pattern_fill(io, piece, 150);
	memset(io + piece, 0, piece);
	ASSERT_EQ(-EPERM, dmirror(self->fd, HMM_DMIRROR_WRITE, r, npages, io,
				  &c));
	ASSERT_EQ(-1, pattern_check(r, piece, 150));
	ASSERT_EQ(-1, bytes_check(r + piece, piece, 0));
	ASSERT_EQ(-1, pattern_check(r + 2 * piece, piece, 151));
	ASSERT_EQ(0, munmap(r, npages * ps));
	free(io);
}

struct snap_race {
	char *addr;
	unsigned long npages;
	size_t ps;
	bool stop;
	unsigned long cycles;
	int err;
};

/* Unmap, remap and populate the range, over and over. */
static void *snap_race_remapper(void *arg)
{
	struct snap_race *r = arg;
	size_t size = r->npages * r->ps;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		if (munmap(r->addr, size) ||
		    mmap(r->addr, size, RW, MAP_PRIVATE | MAP_ANONYMOUS |
			 MAP_FIXED, -1, 0) != r->addr) {
			r->err = errno;
			break;
		}
		pattern_fill(r->addr, size, 160);
		r->cycles++;
	}
	return NULL;
}

/*
 * Snapshots taken while another thread tears the range down and puts it
 * back: every snapshot completes (the driver's retries on EBUSY converge)
 * and describes each page as one of the states the range actually goes
 * through. Once the race stops, a snapshot reports exactly the final
 * state: nothing stale is left behind in an unmapped or fresh range.
 */
TEST_F_TIMEOUT(hmm, snapshot_races_munmap, 120)
{
	struct snap_race r = { .npages = 64, .ps = self->ps };
	unsigned long i, j, done = 0, busy = 0;
	struct hmm_dmirror_cmd c;
	unsigned char m[64];
	pthread_t th;
	char *io;
	int ret;

	r.addr = mmap(NULL, r.npages * r.ps, RW,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, r.addr);
	ASSERT_EQ(0, pthread_create(&th, NULL, snap_race_remapper, &r));
	for (i = 0; i < 400; i++) {
		memset(m, 0xee, sizeof(m));
		ret = dmirror(self->fd, HMM_DMIRROR_SNAPSHOT, r.addr, r.npages,
			      m, &c);
		if (ret == -EBUSY) {
			busy++;
			continue;
		}
		ASSERT_EQ(0, ret);
		done++;
		for (j = 0; j < r.npages; j++)
			ASSERT_TRUE(m[j] == SNAP_W || m[j] == SNAP_NONE ||
				    m[j] == SNAP_ERR)
				TH_LOG("page %lu: 0x%02x (%s)", j, m[j],
				       snap_name(m[j]));
	}
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	ASSERT_EQ(0, pthread_join(th, NULL));
	ASSERT_EQ(0, r.err);
	ASSERT_LT(0, r.cycles);
	/* retries converge: most snapshots complete */
	ASSERT_LT(busy, done);

	snap_all(_metadata, self->fd, r.addr, r.npages, SNAP_W);
	ASSERT_EQ(0, munmap(r.addr, r.npages * r.ps));
	snap_all(_metadata, self->fd, r.addr, r.npages, SNAP_ERR);
	ASSERT_EQ(r.addr, mmap(r.addr, r.npages * r.ps, RW,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			       -1, 0));
	snap_all(_metadata, self->fd, r.addr, r.npages, SNAP_NONE);
	io = malloc(r.npages * r.ps);
	ASSERT_NE(NULL, io);
	memset(io, 0xaa, r.npages * r.ps);
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_READ, r.addr, r.npages,
			     io, &c));
	ASSERT_EQ(-1, bytes_check(io, r.npages * r.ps, 0));
	free(io);
	ASSERT_EQ(0, munmap(r.addr, r.npages * r.ps));
}

/* ------------------------------------------------------------------ */
/* Exclusive (atomic) access                                           */
/* ------------------------------------------------------------------ */

/*
 * Exclusive access hands the device the data and takes the pages away
 * from the CPU page tables; device reads keep it. A CPU access to a page
 * ends it for that page only, and the data is intact throughout.
 */
TEST_F(hmm, exclusive_access)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 110);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, b, &c));
	ASSERT_EQ(16, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 110));
	ASSERT_EQ(-EPERM, tb_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, b,
				 &c));
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_NONE);

	ASSERT_EQ(0, dev_read_check(self->fd, b, &c, 110));
	ASSERT_EQ(-EPERM, tb_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, b,
				 &c));

	/* The CPU reads page 0: only page 0 loses exclusive access. */
	ASSERT_EQ(-1, pattern_check(b->cpu, self->ps, 110));
	ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, b,
				  self->ps, 0, 1, &c));
	ASSERT_EQ(-EPERM, tb_cmd_range(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE,
				       b, self->ps, 1, 15, &c));
	ASSERT_EQ(SNAP_W, snap_one(self->fd, b->cpu));

	pattern_fill(b->cpu, b->size, 111);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, b, &c));
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_W);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 111));

	/* Exclusive access can be taken again, by the other device too. */
	ASSERT_EQ(0, tb_cmd(self->peer, HMM_DMIRROR_EXCLUSIVE, b, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 111));
	ASSERT_EQ(-EPERM, tb_cmd(self->peer, HMM_DMIRROR_CHECK_EXCLUSIVE, b,
				 &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 111));
	ASSERT_EQ(0, tb_cmd(self->peer, HMM_DMIRROR_CHECK_EXCLUSIVE, b, &c));
	tbuf_free(b);
}

/*
 * Write-protecting exclusively held memory: the device can no longer
 * write it (EPERM), the CPU still reads the data.
 */
TEST_F(hmm, exclusive_mprotect)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 112);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, b, &c));
	ASSERT_EQ(16, c.cpages);
	ASSERT_EQ(0, mprotect(b->cpu, b->size, PROT_READ));
	pattern_fill(b->dev, b->size, 113);
	ASSERT_EQ(-EPERM, tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 112));
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_R);
	tbuf_free(b);
}

/*
 * fork() with exclusively held memory: parent and child each keep the
 * data as it was and their later writes stay their own.
 */
TEST_F(hmm, exclusive_fork_cow)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	pid_t pid;

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 114);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, b, &c));
	ASSERT_EQ(16, c.cpages);

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		child_rewrite_exit(b, 114, 115);
	ASSERT_EQ(0, child_wait(pid));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 114));
	pattern_fill(b->cpu, b->size, 116);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 116));
	tbuf_free(b);
}

/*
 * Exclusive access to memory backed by a THP.
 *
 * Tests a 6.12 bug: on unmodified 6.12.117 this fails with EBUSY, since
 * make_device_exclusive_range() leaves the THP unsplit and then refuses
 * its tail pages. Fixed by patches/mm-rmap-device-exclusive-thp.patch.
 */
TEST_F(hmm, exclusive_thp)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_thp(self->ps, 117);

	if (!b)
		SKIP(return, "no THP available (THP disabled or no memory)");
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, b, &c));
	ASSERT_EQ(b->npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 117));
	ASSERT_EQ(-EPERM, tb_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, b,
				 &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 117));
	pattern_fill(b->cpu, b->size, 118);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, b, &c));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 118));
	tbuf_free(b);
}

/* ------------------------------------------------------------------ */
/* get_user_pages() and long-term pins (through gup_test)              */
/* ------------------------------------------------------------------ */

static int gup_open(void)
{
	return open(GUP_TEST_PATH, O_RDWR | O_CLOEXEC);
}

static int gup_run(int gfd, unsigned long req, void *addr, size_t size)
{
	struct gup_test g;

	memset(&g, 0, sizeof(g));
	g.addr = (uintptr_t)addr;
	g.size = size;
	g.nr_pages_per_call = 1;
	g.gup_flags = GUP_FOLL_WRITE;
	return ioctl(gfd, req, &g) ? -errno : 0;
}

/*
 * Short-term references: GUP on coherent device pages returns them where
 * they are; on private pages (which the CPU cannot map) it first brings
 * them home. A long-term pin may never hold device memory: both kinds are
 * migrated to system memory before being pinned.
 */
TEST_F(hmm, gup_on_device_pages)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 12, RW);
	unsigned char want[12];
	int gfd = gup_open(), i;

	ASSERT_LE(0, gfd) TH_LOG(GUP_TEST_PATH ": %s", strerror(errno));
	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 120);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(12, c.cpages);

	ASSERT_EQ(0, gup_run(gfd, GUP_BASIC_TEST, b->cpu, 4 * self->ps));
	ASSERT_EQ(0, gup_run(gfd, PIN_BASIC_TEST, tb_page(b, self->ps, 4),
			     4 * self->ps));
	ASSERT_EQ(0, gup_run(gfd, PIN_LONGTERM_BENCHMARK,
			     tb_page(b, self->ps, 8), 4 * self->ps));
	for (i = 0; i < 12; i++)
		want[i] = i < 8 ? snap_cpu(variant, true) : SNAP_W;
	snap_cmp(_metadata, self->fd, b->cpu, 12, want, false);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 120));
	close(gfd);
	tbuf_free(b);
}

/*
 * While a long-term pin is held (PIN_LONGTERM_TEST_START): the pinned
 * pages are in system memory with the data, and the device cannot
 * migrate them. Once unpinned they migrate again.
 */
TEST_F(hmm, longterm_pin_blocks_migration)
{
	struct pin_longterm_test pin;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	__u64 dst;
	int gfd = gup_open(), ret;

	ASSERT_LE(0, gfd) TH_LOG(GUP_TEST_PATH ": %s", strerror(errno));
	ASSERT_NE(NULL, b);
	ioctl(gfd, PIN_LONGTERM_TEST_STOP);
	pattern_fill(b->cpu, b->size, 121);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(16, c.cpages);

	memset(&pin, 0, sizeof(pin));
	pin.addr = (uintptr_t)b->cpu;
	pin.size = b->size;
	pin.flags = PIN_LONGTERM_TEST_FLAG_USE_WRITE;
	ASSERT_EQ(0, ioctl(gfd, PIN_LONGTERM_TEST_START, &pin))
		TH_LOG("PIN_LONGTERM_TEST_START: %s", strerror(errno));
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_W);

	memset(b->dev, 0, b->size);
	dst = (uintptr_t)b->dev;
	ASSERT_EQ(0, ioctl(gfd, PIN_LONGTERM_TEST_READ, &dst));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 121));

	ret = tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c);
	ASSERT_EQ(-ENOENT, ret)
		TH_LOG("MIGRATE_TO_DEV of pinned pages: %d, cpages %llu",
		       ret, (unsigned long long)c.cpages);
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_W);

	ASSERT_EQ(0, ioctl(gfd, PIN_LONGTERM_TEST_STOP));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(16, c.cpages);
	snap_all(_metadata, self->fd, b->cpu, 16, snap_local(variant, true));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 121));
	close(gfd);
	tbuf_free(b);
}

/* ------------------------------------------------------------------ */
/* What each command answers (Linux 6.12's meanings)                   */
/* ------------------------------------------------------------------ */

/*
 * READ and WRITE count device faults, not pages: a range the device has
 * not seen is one fault whatever its size and its backing (small pages, a
 * THP), a range it has seen is none, and a change to one page of it in the
 * CPU page tables costs one more.  MIGRATE_TO_DEV never counts a fault.
 */
TEST_F(hmm, answer_faults_per_command)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 1024, RW);
	struct tbuf *w = tbuf_anon(self->ps, 1024, RW);
	struct tbuf *t;

	ASSERT_NE(NULL, b);
	ASSERT_NE(NULL, w);
	pattern_fill(b->cpu, b->size, 141);
	ASSERT_EQ(0, dev_read_check(self->fd, b, &c, 141));
	ASSERT_EQ(1024, c.cpages);
	ASSERT_EQ(1, c.faults);
	ASSERT_EQ(0, dev_read_check(self->fd, b, &c, 141));
	ASSERT_EQ(0, c.faults);

	/* One page in the middle changes: one fault brings it back. */
	ASSERT_EQ(0, madvise(tb_page(b, self->ps, 700), self->ps,
			     MADV_DONTNEED));
	memset(b->dev, 0xee, b->size);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(1024, c.cpages);
	ASSERT_EQ(1, c.faults);
	ASSERT_EQ(-1, pattern_check(b->dev, 700 * self->ps, 141));
	ASSERT_EQ(-1, bytes_check(b->dev + 700 * self->ps, self->ps, 0));

	/* Writing: the same, and the first write replaces zero pages. */
	memset(w->dev, 0xee, w->size);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, w, &c));
	ASSERT_EQ(1, c.faults);
	ASSERT_EQ(-1, bytes_check(w->dev, w->size, 0));
	pattern_fill(w->dev, w->size, 142);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_WRITE, w, &c));
	ASSERT_EQ(1024, c.cpages);
	ASSERT_EQ(1, c.faults);
	pattern_fill(w->dev, w->size, 143);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_WRITE, w, &c));
	ASSERT_EQ(0, c.faults);
	ASSERT_EQ(-1, pattern_check(w->cpu, w->size, 143));

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(1024, c.cpages);
	ASSERT_EQ(0, c.faults);

	/* A THP: one fault for its 512 pages too. */
	t = tbuf_thp(self->ps, 144);
	ASSERT_NE(NULL, t);
	ASSERT_EQ(0, dev_read_check(self->fd, t, &c, 144));
	ASSERT_EQ(t->npages, c.cpages);
	ASSERT_EQ(1, c.faults);
	tbuf_free(t);
	tbuf_free(w);
	tbuf_free(b);
}

/*
 * After the CPU took half of a migrated range back (a private page by
 * faulting it home, a coherent one by using it in place), migrating the
 * range again reports every page the device holds, not only those that
 * moved this time, and hands back the data of all of them.
 */
TEST_F(hmm, answer_cpages_after_partial_return)
{
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 1024, RW);
	size_t half;

	ASSERT_NE(NULL, b);
	half = b->size / 2;
	pattern_fill(b->cpu, b->size, 145);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(1024, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 145));

	ASSERT_EQ(-1, pattern_check(b->cpu, half, 145));
	snap_all(_metadata, self->fd, b->cpu, 512,
		 snap_cpu(variant, true));
	snap_all(_metadata, self->fd, b->cpu + half, 512,
		 snap_local(variant, true));

	stats_get(_metadata, self->fd, self->stats, &s0);
	memset(b->dev, 0, b->size);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(1024, c.cpages);
	ASSERT_EQ(0, c.faults);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 145));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats)
		ASSERT_EQ(variant->cpu_in_place ? 0 : 512,
			  (s1.to_device - s0.to_device));
	snap_all(_metadata, self->fd, b->cpu, 1024, snap_local(variant, true));

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(1024, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 145));
	tbuf_free(b);
}

/*
 * MIGRATE_TO_DEV fails with ENOENT when some page of the range is not in
 * the device's memory afterwards: a shared mapping cannot move, whether
 * or not the device read it before; nor can a page in the peer device's
 * memory.  Nothing moved, nothing changed.
 */
TEST_F(hmm, answer_enoent_when_nothing_moves)
{
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_map(self->ps, 16, RW, MAP_SHARED | MAP_ANONYMOUS,
				  -1, 0);
	struct tbuf *p = tbuf_anon(self->ps, 16, RW);

	ASSERT_NE(NULL, b);
	ASSERT_NE(NULL, p);
	pattern_fill(b->cpu, b->size, 146);
	stats_get(_metadata, self->fd, self->stats, &s0);
	ASSERT_EQ(-ENOENT, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b,
				  &c));
	ASSERT_EQ(0, dev_read_check(self->fd, b, &c, 146));
	ASSERT_EQ(-ENOENT, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b,
				  &c));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats)
		ASSERT_EQ(0, (s1.to_device - s0.to_device));
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_W);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 146));

	pattern_fill(p->cpu, p->size, 147);
	ASSERT_EQ(0, tb_cmd(self->peer, HMM_DMIRROR_MIGRATE_TO_DEV, p, &c));
	ASSERT_EQ(16, c.cpages);
	ASSERT_EQ(-ENOENT, tb_cmd_range(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV,
					p, self->ps, 5, 1, &c));
	snap_all(_metadata, self->fd, p->cpu, 16, snap_remote(variant, true));
	ASSERT_EQ(0, tb_cmd(self->peer, HMM_DMIRROR_MIGRATE_TO_SYS, p, &c));
	ASSERT_EQ(-1, pattern_check(p->cpu, p->size, 147));
	tbuf_free(p);
	tbuf_free(b);
}

/* ------------------------------------------------------------------ */
/* Newer upstream interfaces                                           */
/* ------------------------------------------------------------------ */

/*
 * HMM_DMIRROR_FLAGS (6.19's command): the flags word travels in npages,
 * known bits are taken, unknown ones refused (EINVAL) without changing
 * anything, and the flags are the open file's own.
 */
TEST_F(hmm, flags_command)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 8, RW);

	ASSERT_NE(NULL, b);
	ASSERT_EQ(0, set_flags(self->fd, HMM_DMIRROR_FLAG_FAIL_ALLOC));
	ASSERT_EQ(0, set_flags(self->fd, 0));
	ASSERT_EQ(-EINVAL, set_flags(self->fd, 1ULL << 1));
	ASSERT_EQ(-EINVAL, set_flags(self->fd, HMM_DMIRROR_FLAG_FAIL_ALLOC |
					       (1ULL << 63)));
	ASSERT_EQ(-EINVAL, set_flags(self->fd, ~0ULL));
	ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_FLAGS, b->cpu,
			     HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL, &c));
	ASSERT_EQ(0, c.cpages);
	ASSERT_EQ(0, c.faults);

	/* FAIL_ALLOC: the migration still moves everything. */
	pattern_fill(b->cpu, b->size, 150);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(8, c.cpages);
	snap_all(_metadata, self->fd, b->cpu, 8, snap_local(variant, true));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(8, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 150));
	ASSERT_EQ(0, set_flags(self->fd, 0));
	tbuf_free(b);
}

/*
 * Exclusive access taken page by page with make_device_exclusive()
 * (6.15's call) behaves as the range call does: the data, the check, a
 * CPU access ending it page by page, write-protection, a THP.
 */
TEST_F(hmm, exclusive_by_page)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	struct tbuf *t;

	ASSERT_NE(NULL, b);
	ASSERT_EQ(0, set_flags(self->fd, HMM_DMIRROR_FLAG_EXCLUSIVE_BY_PAGE));
	pattern_fill(b->cpu, b->size, 151);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, b, &c));
	ASSERT_EQ(16, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 151));
	ASSERT_EQ(-EPERM, tb_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, b,
				 &c));
	snap_all(_metadata, self->fd, b->cpu, 16, SNAP_NONE);

	ASSERT_EQ(-1, pattern_check(b->cpu, self->ps, 151));
	ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, b,
				  self->ps, 0, 1, &c));
	ASSERT_EQ(-EPERM, tb_cmd_range(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE,
				       b, self->ps, 1, 15, &c));
	pattern_fill(b->cpu, b->size, 152);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, b, &c));
	ASSERT_EQ(0, dev_read_check(self->fd, b, &c, 152));

	/* Read-only memory cannot be taken: the write fault is refused. */
	ASSERT_EQ(0, mprotect(b->cpu, b->size, PROT_READ));
	ASSERT_EQ(-EPERM, tb_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, b, &c));
	ASSERT_EQ(0, mprotect(b->cpu, b->size, RW));

	t = tbuf_thp(self->ps, 153);
	ASSERT_NE(NULL, t);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, t, &c));
	ASSERT_EQ(t->npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(t->dev, t->size, 153));
	ASSERT_EQ(-1, pattern_check(t->cpu, t->size, 153));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, t, &c));
	ASSERT_EQ(0, set_flags(self->fd, 0));
	tbuf_free(t);
	tbuf_free(b);
}

/*
 * HMM_DMIRROR_RELEASE names the pages in use to migrate_device_pfns()
 * (6.15's call): pages scattered over the device's memory, among free
 * ones, all come home with their data and their mappings.
 */
TEST_F(hmm, release_sparse_pages)
{
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 150, RW);
	unsigned long i;

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 154);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(150, c.cpages);
	/* Every third page goes home; the device pages left are scattered. */
	for (i = 0; i < b->npages; i += 3)
		ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS,
					  b, self->ps, i, 1, &c));
	stats_get(_metadata, self->fd, self->stats, &s0);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_RELEASE, b, &c));
	ASSERT_EQ(100, c.cpages);
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats) {
		ASSERT_EQ(0, s1.pages_in_use);
		ASSERT_EQ(100, (s1.to_system - s0.to_system));
	}
	snap_all(_metadata, self->fd, b->cpu, b->npages, SNAP_W);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 154));
	tbuf_free(b);
}

struct holder {
	int fd;
	char *addr;
	unsigned long npages;
	int ret;
};

static void *holder_fn(void *arg)
{
	struct holder *h = arg;

	h->ret = dmirror(h->fd, HMM_DMIRROR_MIGRATE_TO_SYS, h->addr, h->npages,
			 NULL, NULL);
	return NULL;
}

static double now_s(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * A CPU access, and another device's hmm_range_fault(), meeting a
 * device-private page its driver holds locked for a long time wait for it
 * asleep instead of faulting again and again (the 7.0 livelock fix): each
 * finishes with the data, having used little CPU time.  A coherent page
 * is mapped CPU memory: neither waits at all.
 */
TEST_F_TIMEOUT(hmm, fault_waits_for_locked_page, 60)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 4, RW);
	struct holder h;
	pthread_t th;
	double w0, c0, wall, cpu;
	int round;

	ASSERT_NE(NULL, b);
	ASSERT_EQ(0, set_flags(self->fd, HMM_DMIRROR_FLAG_HOLD_LOCKED));
	for (round = 0; round < 2; round++) {
		pattern_fill(b->cpu, b->size, 155 + round);
		ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b,
				    &c));
		h = (struct holder){ .fd = self->fd, .addr = b->cpu,
				     .npages = b->npages };
		ASSERT_EQ(0, pthread_create(&th, NULL, holder_fn, &h));
		usleep(150000);
		w0 = now_s(CLOCK_MONOTONIC);
		c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
		if (round == 0) {
			ASSERT_EQ(-1, pattern_check(b->cpu, b->size,
						    155 + round));
		} else {
			ASSERT_EQ(0, dev_read_check(self->peer, b, &c,
						    155 + round));
		}
		cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
		wall = now_s(CLOCK_MONOTONIC) - w0;
		ASSERT_EQ(0, pthread_join(th, NULL));
		ASSERT_EQ(0, h.ret);
		if (variant->cpu_in_place) {
			/* Mapped CPU memory: nothing to wait for. */
			ASSERT_GT(0.1, wall) TH_LOG("round %d: waited %.3f s",
						    round, wall);
		} else {
			/* The holder keeps the pages locked for 500 ms. */
			ASSERT_LT(0.05, wall)
				TH_LOG("round %d: waited only %.3f s", round,
				       wall);
			ASSERT_GT(wall / 4, cpu)
				TH_LOG("round %d: %.3f s of CPU in %.3f s",
				       round, cpu, wall);
		}
		ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b,
				    &c));
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 155 + round));
	}
	ASSERT_EQ(0, set_flags(self->fd, 0));
	tbuf_free(b);
}

/*
 * Private copies of a MAP_PRIVATE file mapping (anonymous pages in a file
 * VMA) still in device memory when the range is unmapped, or when the
 * process exits: freed without a kernel report (upstream reported a
 * warning here up to 7.0), the device gets its pages back and the file
 * keeps its data.
 */
TEST_F(hmm, file_private_device_pages_unmapped)
{
	struct hmm_dmirror_stats s0, s1;
	unsigned long npages = 16;
	size_t size = npages * self->ps;
	struct hmm_dmirror_cmd c;
	char *tmp = malloc(size);
	struct tbuf *b;
	int ffd, round;
	pid_t pid;

	ASSERT_NE(NULL, tmp);
	ffd = data_file(true, size, 157);
	ASSERT_LE(0, ffd) TH_LOG("data file: %s", strerror(errno));
	stats_get(_metadata, self->fd, self->stats, &s0);
	for (round = 0; round < 2; round++) {
		b = tbuf_map(self->ps, npages, RW, MAP_PRIVATE, ffd, 0);
		ASSERT_NE(NULL, b);
		pattern_fill(b->cpu, size, 158);
		if (round == 1) {
			pid = fork();
			ASSERT_LE(0, pid);
			if (!pid) {
				int fd = dev_open(variant->unit);

				CHILD_CHECK(fd >= 0);
				pattern_fill(b->cpu, size, 159);
				CHILD_CHECK(!tb_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV,
						    b, &c));
				CHILD_CHECK(c.cpages == npages);
				_exit(0);
			}
			ASSERT_EQ(0, child_wait(pid));
		} else {
			ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV,
					    b, &c));
			ASSERT_EQ(npages, c.cpages);
			snap_all(_metadata, self->fd, b->cpu, npages,
				 snap_local(variant, true));
		}
		tbuf_free(b);
	}
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats)
		ASSERT_EQ(s0.pages_in_use, s1.pages_in_use);
	ASSERT_EQ((ssize_t)size, pread(ffd, tmp, size, 0));
	ASSERT_EQ(-1, pattern_check(tmp, size, 157));
	close(ffd);
	free(tmp);
}

/* ------------------------------------------------------------------ */
/* Concurrency                                                         */
/* ------------------------------------------------------------------ */

struct cpu_reader {
	char *addr;
	size_t size;
	uint32_t seed;
	bool stop;
	unsigned long passes;
	long bad;
};

static void *cpu_reader_fn(void *arg)
{
	struct cpu_reader *r = arg;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		long off = pattern_check(r->addr, r->size, r->seed);

		if (off >= 0) {
			r->bad = off;
			break;
		}
		r->passes++;
	}
	return NULL;
}

/*
 * A thread keeps reading the data with the CPU while the main thread
 * migrates it back and forth. Whatever interleaving happens, every CPU
 * read sees the right data and migration only ever fails cleanly.
 */
TEST_F_TIMEOUT(hmm, migrate_races_cpu_reads, 120)
{
	struct cpu_reader r = { .seed = 130, .bad = -1 };
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 64, RW);
	pthread_t th;
	int i, ret;

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 130);
	r.addr = b->cpu;
	r.size = b->size;
	ASSERT_EQ(0, pthread_create(&th, NULL, cpu_reader_fn, &r));
	for (i = 0; i < 200 && r.bad < 0; i++) {
		ret = tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c);
		ASSERT_TRUE(ret == 0 || ret == -ENOENT || ret == -EBUSY)
			TH_LOG("MIGRATE_TO_DEV: %d", ret);
		ret = tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c);
		ASSERT_TRUE(ret == 0 || ret == -EBUSY)
			TH_LOG("MIGRATE_TO_SYS: %d", ret);
	}
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	ASSERT_EQ(0, pthread_join(th, NULL));
	ASSERT_EQ(-1, r.bad);
	ASSERT_LT(0, r.passes);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 130));
	tbuf_free(b);
}

/*
 * A thread that migrates a range to the device and back, round after
 * round, until stopped. The main thread may park it between two rounds
 * (migrator_pause(), migrator_resume()) and wait for it to finish one
 * (migrator_wait_round()), so that every state the main thread sets up is
 * met by a whole round. The errors a race allows are accepted: EBUSY, and
 * ENOENT from the device read that ends MIGRATE_TO_DEV; with @may_vanish
 * (the range may be unmapped or PROT_NONE under it) also EINVAL from the
 * checks before a migration and EFAULT from that read. Anything else stops
 * it, in @bad_ret and @bad_req.
 */
struct migrator {
	int fd;
	char *addr;
	unsigned long npages;
	bool may_vanish;
	char *io;
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop, pause, parked, done;
	unsigned long rounds;
	int bad_ret;
	unsigned long bad_req;
};

static bool migrator_ret_ok(const struct migrator *m, unsigned long req,
			    int ret)
{
	bool to_dev = req == HMM_DMIRROR_MIGRATE_TO_DEV;

	if (!ret || ret == -EBUSY || (to_dev && ret == -ENOENT))
		return true;
	return m->may_vanish && (ret == -EINVAL || (to_dev && ret == -EFAULT));
}

/* One round; false (and the failure recorded) on an unexpected error. */
static bool migrator_round(struct migrator *m)
{
	static const unsigned long reqs[] = {
		HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS,
	};
	struct hmm_dmirror_cmd c;
	unsigned int i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(reqs); i++) {
		ret = dmirror(m->fd, reqs[i], m->addr, m->npages, m->io, &c);
		if (!migrator_ret_ok(m, reqs[i], ret)) {
			m->bad_ret = ret;
			m->bad_req = reqs[i];
			return false;
		}
	}
	return true;
}

static void *migrator_fn(void *arg)
{
	struct migrator *m = arg;
	bool ok = true;

	pthread_mutex_lock(&m->lock);
	while (ok && !m->stop) {
		if (m->pause) {
			m->parked = true;
			pthread_cond_broadcast(&m->cond);
			pthread_cond_wait(&m->cond, &m->lock);
			continue;
		}
		m->parked = false;
		pthread_mutex_unlock(&m->lock);
		ok = migrator_round(m);
		pthread_mutex_lock(&m->lock);
		m->rounds += ok;
		pthread_cond_broadcast(&m->cond);
	}
	m->done = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* Start migrating @npages pages at @addr through @fd; 0 or -errno. */
static int migrator_start(struct migrator *m, int fd, char *addr,
			  unsigned long npages, bool may_vanish)
{
	int ret;

	memset(m, 0, sizeof(*m));
	m->fd = fd;
	m->addr = addr;
	m->npages = npages;
	m->may_vanish = may_vanish;
	m->io = malloc(npages * sysconf(_SC_PAGESIZE));
	if (!m->io)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	ret = pthread_create(&m->th, NULL, migrator_fn, m);
	if (ret)
		free(m->io);
	return -ret;
}

/* Has the migrator stopped on an unexpected error? */
static bool migrator_failed(struct migrator *m)
{
	bool done;

	pthread_mutex_lock(&m->lock);
	done = m->done;
	pthread_mutex_unlock(&m->lock);
	return done;
}

/* Park the migrator between two rounds (or let it be, if it failed). */
static void migrator_pause(struct migrator *m)
{
	pthread_mutex_lock(&m->lock);
	m->pause = true;
	while (!m->parked && !m->done)
		pthread_cond_wait(&m->cond, &m->lock);
	pthread_mutex_unlock(&m->lock);
}

static void migrator_resume(struct migrator *m)
{
	pthread_mutex_lock(&m->lock);
	m->pause = false;
	m->parked = false;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* Wait until the migrator has done one more whole round (or failed). */
static void migrator_wait_round(struct migrator *m)
{
	unsigned long r;

	pthread_mutex_lock(&m->lock);
	r = m->rounds;
	while (m->rounds == r && !m->done)
		pthread_cond_wait(&m->cond, &m->lock);
	pthread_mutex_unlock(&m->lock);
}

/* Stop and join the migrator; returns the rounds it completed. */
static unsigned long migrator_stop(struct migrator *m)
{
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	m->pause = false;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->th, NULL);
	free(m->io);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	return m->rounds;
}

/*
 * End a race: once the migrator has completed one more round it is
 * stopped; it must have met no error the race does not allow, and the
 * device must read @seed's data from the @npages pages at @addr.
 */
static void race_end(struct __test_metadata *_metadata, struct migrator *m,
		     int fd, char *addr, unsigned long npages, size_t ps,
		     uint32_t seed)
{
	struct hmm_dmirror_cmd c;
	unsigned long rounds;
	char *io;

	migrator_wait_round(m);
	rounds = migrator_stop(m);
	ASSERT_EQ(0, m->bad_ret)
		TH_LOG("request 0x%lx failed with %d", m->bad_req, m->bad_ret);
	ASSERT_LT(0, rounds);
	io = malloc(npages * ps);
	ASSERT_NE(NULL, io);
	ASSERT_EQ(0, dmirror(fd, HMM_DMIRROR_READ, addr, npages, io, &c));
	ASSERT_EQ(npages, c.cpages);
	ASSERT_EQ(-1, pattern_check(io, npages * ps, seed));
	free(io);
}

/*
 * A thread migrates a buffer to the device and back without pause while
 * the process forks (the child checks its copy and writes to it), flips
 * the buffer read-only and back, and drops half of it with
 * MADV_DONTNEED (which must read as zeroes, then is filled again). After
 * every step the data is what the process last wrote, and the migrations
 * only ever fail with the errors a race allows.
 */
TEST_F_TIMEOUT(hmm, migrate_races_mm_changes, 180)
{
	size_t ps = self->ps, half;
	struct tbuf *b = tbuf_anon(ps, 64, RW);
	struct migrator m;
	pid_t pid;
	int i;

	ASSERT_NE(NULL, b);
	half = b->size / 2;
	pattern_fill(b->cpu, b->size, 170);
	ASSERT_EQ(0, migrator_start(&m, self->fd, b->cpu, 64, false));
	for (i = 0; i < 90 && !migrator_failed(&m); i++) {
		switch (i % 3) {
		case 0:
			pid = fork();
			ASSERT_LE(0, pid);
			if (!pid) {
				CHILD_CHECK(pattern_check(b->cpu, b->size,
							  170) < 0);
				pattern_fill(b->cpu, half, 171);
				CHILD_CHECK(pattern_check(b->cpu, half,
							  171) < 0);
				_exit(0);
			}
			ASSERT_EQ(0, child_wait(pid));
			break;
		case 1:
			ASSERT_EQ(0, mprotect(b->cpu, b->size, PROT_READ));
			ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 170));
			ASSERT_EQ(0, mprotect(b->cpu, b->size, RW));
			break;
		case 2:
			ASSERT_EQ(0, madvise(b->cpu + half, half,
					     MADV_DONTNEED));
			ASSERT_EQ(-1, bytes_check(b->cpu + half, half, 0));
			pattern_fill_from(b->cpu + half, half, 170, half);
			break;
		}
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 170))
			TH_LOG("step %d", i);
	}
	race_end(_metadata, &m, self->fd, b->cpu, 64, ps, 170);
	tbuf_free(b);
}

/* Map @size bytes of PROT_NONE at @addr, replacing what is there. */
static bool reserve_at(void *addr, size_t size)
{
	return mmap(addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
		    MAP_FIXED | MAP_NORESERVE, -1, 0) == addr;
}

/*
 * The two migration races below are not run on 6.12's private device (its
 * driver has no STATS): there the mremap race's device read copies from a
 * device-private page as if it were memory and oopses, the reclaim race
 * after it ran into the harness's timeout, and the module unload after
 * hmm-tests never finished (make test-stock).
 */
static bool races_oops_here(const struct _test_data_hmm *self,
			    const struct _fixture_variant_hmm *variant)
{
	return !self->stats && !variant->coherent;
}

#define RACES_OOPS_MSG	"6.12's driver oopses reading device-private pages"

#define MREMAP_RACE_BASE	64	/* pages the migrator works on */
#define MREMAP_RACE_GROW	32	/* pages added and removed again */

/*
 * A thread migrates the first 64 pages of a buffer to the device and back
 * while the main thread cycles the buffer through four mremap() states:
 * grown in place by 32 pages (whose new tail reads as zeroes, is filled,
 * and is migrated to the device by the main thread), moved whole to
 * another address (MREMAP_MAYMOVE | MREMAP_FIXED, the old place left
 * PROT_NONE), moved back, and shrunk to 64 pages again (the tail's device
 * pages are freed with it). Spare room is kept PROT_NONE so that nothing
 * else is mapped there; growing in place needs the room empty, which it
 * is for the one call in between (no other thread maps anything).
 *
 * While the buffer is away the migrator's range is PROT_NONE, or briefly
 * unmapped: the driver refuses a migration there before it starts
 * (EINVAL, dmirror_check_migratable()), and the device read that ends
 * MIGRATE_TO_DEV faults (EFAULT) if the range went away after the
 * migration itself. Every state is met by at least one whole round of the
 * migrator. After every step the CPU reads the buffer intact where it is,
 * and at the end so does the device.
 */
TEST_F_TIMEOUT(hmm, migrate_races_mremap, 180)
{
	const unsigned long n = MREMAP_RACE_BASE, k = MREMAP_RACE_GROW;
	size_t ps = self->ps, small = n * ps, big = (n + k) * ps;
	struct tbuf *b = tbuf_anon(ps, n + k, RW);
	struct tbuf *away = tbuf_anon(ps, n + k, PROT_NONE);
	struct hmm_dmirror_cmd c;
	struct migrator m;
	char *a, *at, *q;
	size_t size;
	int i, ret;

	if (races_oops_here(self, variant)) {
		tbuf_free(b);
		tbuf_free(away);
		SKIP(return, RACES_OOPS_MSG);
	}
	ASSERT_NE(NULL, b);
	ASSERT_NE(NULL, away);
	a = b->cpu;
	ASSERT_EQ(a, mremap(a, big, small, 0));
	ASSERT_TRUE(reserve_at(a + small, big - small));
	pattern_fill(a, small, 210);
	at = a;
	size = small;
	ASSERT_EQ(0, migrator_start(&m, self->fd, a, n, true));
	for (i = 0; i < 88 && !migrator_failed(&m); i++) {
		switch (i % 4) {
		case 0:	/* grow in place */
			ASSERT_EQ(0, munmap(a + small, big - small));
			ASSERT_EQ(a, mremap(a, small, big, 0));
			ASSERT_EQ(-1, bytes_check(a + small, big - small, 0));
			pattern_fill_from(a + small, big - small, 210, small);
			ret = dmirror(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV,
				      a + small, k, b->dev, &c);
			/* The read that ends it may lose to the migrator. */
			ASSERT_TRUE(ret == 0 || ret == -EBUSY)
				TH_LOG("MIGRATE_TO_DEV of the tail: %d", ret);
			if (!ret)
				ASSERT_EQ(k, c.cpages);
			size = big;
			break;
		case 1:	/* move away */
			q = mremap(a, big, big, MREMAP_MAYMOVE | MREMAP_FIXED,
				   away->cpu);
			ASSERT_EQ(away->cpu, q);
			ASSERT_TRUE(reserve_at(a, big));
			/* Nothing races the device here. */
			memset(b->dev, 0, big);
			ASSERT_EQ(0, dmirror(self->fd, HMM_DMIRROR_READ, q,
					     n + k, b->dev, &c));
			ASSERT_EQ(-1, pattern_check(b->dev, big, 210));
			at = q;
			break;
		case 2:	/* move back */
			q = mremap(away->cpu, big, big,
				   MREMAP_MAYMOVE | MREMAP_FIXED, a);
			ASSERT_EQ(a, q);
			ASSERT_TRUE(reserve_at(away->cpu, big));
			at = a;
			break;
		case 3:	/* shrink */
			ASSERT_EQ(a, mremap(a, big, small, 0));
			ASSERT_TRUE(reserve_at(a + small, big - small));
			size = small;
			break;
		}
		migrator_wait_round(&m);
		ASSERT_EQ(-1, pattern_check(at, size, 210))
			TH_LOG("step %d", i);
	}
	race_end(_metadata, &m, self->fd, a, n, ps, 210);
	tbuf_free(away);
	tbuf_free(b);
}

/*
 * Reclaim racing migration: MADV_PAGEOUT pushes the buffer out to swap
 * while a thread migrates it to the device and back. Each of 30 rounds
 * first parks the migrator, brings every page home (MIGRATE_TO_SYS),
 * writes new data and pages it all out: pages must really reach swap
 * (pagemap), so the migrator then starts on swapped-out pages. At least
 * one does: the pages come home to this CPU's LRU batch, which
 * MADV_PAGEOUT drains, and a batch of another CPU (if the thread moved)
 * holds 31 pages at most. Then, with the migrator running, the buffer is
 * paged out again, the migrator finishes a round, and again; the CPU
 * reads the latest data after every round and the device at the end.
 */
TEST_F_TIMEOUT(hmm, migrate_races_reclaim, 180)
{
	const unsigned long n = 128;
	struct tbuf *b = tbuf_anon(self->ps, n, RW);
	struct hmm_dmirror_cmd c;
	struct migrator m;
	uint32_t seed = 220;
	long swapped;
	int i;

	if (races_oops_here(self, variant)) {
		tbuf_free(b);
		SKIP(return, RACES_OOPS_MSG);
	}
	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, seed);
	ASSERT_EQ(0, migrator_start(&m, self->fd, b->cpu, n, false));
	for (i = 0; i < 30 && !migrator_failed(&m); i++) {
		migrator_pause(&m);
		ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b,
				    &c));
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed));
		pattern_fill(b->cpu, b->size, ++seed);
		ASSERT_EQ(0, madvise(b->cpu, b->size, MADV_PAGEOUT));
		swapped = pagemap_swapped(b->cpu, n, self->ps, NULL);
		ASSERT_LT(0, swapped)
			TH_LOG("round %d: MADV_PAGEOUT left all in memory", i);
		migrator_resume(&m);

		ASSERT_EQ(0, madvise(b->cpu, b->size, MADV_PAGEOUT));
		migrator_wait_round(&m);
		ASSERT_EQ(0, madvise(b->cpu, b->size, MADV_PAGEOUT));
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, seed))
			TH_LOG("round %d", i);
	}
	race_end(_metadata, &m, self->fd, b->cpu, n, self->ps, seed);
	tbuf_free(b);
}

/*
 * Pages in swap do not move to the device: the collect walk leaves swap
 * entries alone (mm/migrate_device.c, mvma_collect_one()), so after
 * MADV_PAGEOUT a migration moves exactly the pages that stayed in memory,
 * and pagemap says which those are; the command reports ENOENT, as the
 * device does not hold the whole range. A device read then faults the
 * rest back in, through the swap cache, where a read fault leaves them;
 * migrating again moves exactly those, which must first be taken out of
 * the swap cache, as 6.12 does (device memory has no swap cache). The
 * data comes back intact through the device and the CPU.
 *
 * Two transient states of such a page are not reasons to leave it: its
 * swap write may still be in flight (the migration waits for it), and a
 * per-CPU LRU batch of the CPU that ended the write or faulted the page
 * in may still hold a reference on it (the migration drains every CPU
 * once); 6.12 does neither (it drains only for folios off the LRU), and
 * before this series did both, this test left a page behind on a loaded
 * host. The page-out and the swap-in run on one CPU and the migrations
 * on the other, where that CPU's batches are out of reach of a local
 * drain.
 */
TEST_F(hmm, migrate_swapped_out_pages)
{
	const unsigned long n = 128;
	struct tbuf *b = tbuf_anon(self->ps, n, RW);
	unsigned char *want = malloc(n);
	bool *in_swap = calloc(n, sizeof(*in_swap));
	struct hmm_dmirror_stats s0, s1;
	struct hmm_dmirror_cmd c;
	unsigned long i;
	long swapped;
	bool two_cpus;
	int tries, ret;

	ASSERT_NE(NULL, b);
	ASSERT_NE(NULL, want);
	ASSERT_NE(NULL, in_swap);
	two_cpus = run_on_cpu(0);
	pattern_fill(b->cpu, b->size, 230);
	ASSERT_EQ(0, madvise(b->cpu, b->size, MADV_PAGEOUT));
	swapped = pagemap_swapped(b->cpu, n, self->ps, in_swap);
	ASSERT_LT(0, swapped)
		TH_LOG("MADV_PAGEOUT put nothing in swap (is swap on?)");

	/* A snapshot does not fault: a page in swap is not present. */
	for (i = 0; i < n; i++)
		want[i] = in_swap[i] ? SNAP_NONE : SNAP_W;
	snap_cmp(_metadata, self->fd, b->cpu, n, want, false);

	stats_get(_metadata, self->fd, self->stats, &s0);
	ASSERT_EQ(-ENOENT, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b,
				  &c));
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats)
		ASSERT_EQ(n - swapped, (s1.to_device - s0.to_device));
	for (i = 0; i < n; i++)
		want[i] = in_swap[i] ? SNAP_NONE : snap_local(variant, true);
	snap_cmp(_metadata, self->fd, b->cpu, n, want, false);

	/* The device reads it all: the pages in swap come back to RAM. */
	ASSERT_EQ(0, dev_read_check(self->fd, b, &c, 230));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, b, &c));
	for (i = 0; i < n; i++) {
		int m = b->snap[i];

		ASSERT_TRUE(in_swap[i] ? snap_is_system(m) :
			    m == snap_local(variant, true))
			TH_LOG("page %lu (%s swap): 0x%02x", i,
			       in_swap[i] ? "was in" : "not in", m);
	}
	ASSERT_EQ(0, pagemap_swapped(b->cpu, n, self->ps, NULL));

	/*
	 * Migrate from the other CPU. Something else may briefly hold a
	 * page (compaction isolating it, say), which leaves it for the next
	 * call, so a few calls are allowed, far enough apart for such a
	 * holder to let go.
	 */
	if (two_cpus)
		two_cpus = run_on_cpu(1);
	stats_get(_metadata, self->fd, self->stats, &s0);
	for (ret = -ENOENT, tries = 0; ret == -ENOENT && tries < 8; tries++) {
		if (tries)
			usleep(20 * 1000);
		ret = tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c);
	}
	run_anywhere();
	ASSERT_EQ(0, ret)
		TH_LOG("%ld calls from CPU %d", (long)tries, two_cpus ? 1 : 0);
	ASSERT_EQ(n, c.cpages);
	stats_get(_metadata, self->fd, self->stats, &s1);
	if (self->stats)
		ASSERT_EQ(swapped, (s1.to_device - s0.to_device));
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 230));
	snap_all(_metadata, self->fd, b->cpu, n, snap_local(variant, true));

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(n, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 230));
	ASSERT_EQ(0, dev_read_check(self->fd, b, &c, 230));
	free(want);
	free(in_swap);
	tbuf_free(b);
}

/* ------------------------------------------------------------------ */
/* Counters                                                            */
/* ------------------------------------------------------------------ */

/*
 * HMM_DMIRROR_STATS reports per-device counters: activity on one device
 * moves its counters and not its peer's, and a bad argument is EFAULT.
 * Without the command (6.12) it must at least be refused consistently.
 */
TEST_F(hmm, stats_per_device)
{
	struct hmm_dmirror_stats a0, a1, p0, p1;
	struct hmm_dmirror_cmd c;
	struct tbuf *b;

	ASSERT_EQ(-1, ioctl(self->fd, HMM_DMIRROR_STATS, NULL));
	ASSERT_EQ(EFAULT, errno);
	if (!self->stats) {
		ASSERT_EQ(0, stats_probe(self->peer));
		return;
	}
	ASSERT_EQ(1, stats_probe(self->peer));

	b = tbuf_anon(self->ps, 10, RW);
	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 140);
	stats_get(_metadata, self->fd, true, &a0);
	stats_get(_metadata, self->peer, true, &p0);

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	stats_get(_metadata, self->fd, true, &a1);
	ASSERT_EQ(10, (a1.to_device - a0.to_device));
	ASSERT_EQ(10, (a1.pages_in_use - a0.pages_in_use));
	ASSERT_LE(a1.pages_in_use, a1.pages_total);

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	stats_get(_metadata, self->fd, true, &a1);
	ASSERT_EQ(10, (a1.to_system - a0.to_system));
	ASSERT_EQ(0, (a1.pages_in_use - a0.pages_in_use));
	ASSERT_EQ(0, (a1.faults - a0.faults));
	ASSERT_EQ(0, (a1.evictions - a0.evictions));

	stats_get(_metadata, self->peer, true, &p1);
	ASSERT_EQ(0, memcmp(&p0, &p1, sizeof(p0)));
	tbuf_free(b);
}

/* ------------------------------------------------------------------ */
/* Watching: the hmm_* counters of /proc/vmstat and the trace events   */
/* ------------------------------------------------------------------ */

/* The hmm_* counters of /proc/vmstat (Documentation/mm/hmm.rst). */
static const char *const vm_names[] = {
	"hmm_range_fault",
	"hmm_range_fault_pages",
	"hmm_range_fault_busy",
	"hmm_migrate_to_device",
	"hmm_migrate_to_device_large",
	"hmm_migrate_to_ram",
	"hmm_migrate_to_ram_large",
	"hmm_migrate_left_pinned",
	"hmm_migrate_left_locked",
	"hmm_migrate_left_mapped",
	"hmm_migrate_left_isolate",
	"hmm_migrate_left_split",
	"hmm_migrate_left_no_dst",
	"hmm_migrate_left_bad_dst",
	"hmm_migrate_left_swapcache",
	"hmm_migrate_left_insert",
	"hmm_migrate_left_gone",
	"hmm_device_fault",
	"hmm_device_folio_split",
};

#define VM_NR		ARRAY_SIZE(vm_names)
#define VM_RANGE	"hmm_range_fault"

struct vm_counts {
	unsigned long long v[VM_NR];
};

/* An expected change of one counter; a list of them ends with no name. */
struct vm_want {
	const char *name;
	long long delta;
};

#define VM_WANT(...)	((const struct vm_want[]){ __VA_ARGS__, { NULL, 0 } })
#define VM_NONE		((const struct vm_want[]){ { NULL, 0 } })

/* Read every hmm_* counter; false if /proc/vmstat lacks any of them. */
static bool vm_read(struct vm_counts *c)
{
	unsigned long long val;
	unsigned int i, found = 0;
	char name[64];
	FILE *f;

	memset(c, 0, sizeof(*c));
	f = fopen("/proc/vmstat", "r");
	if (!f)
		return false;
	while (fscanf(f, "%63s %llu", name, &val) == 2) {
		for (i = 0; i < VM_NR; i++) {
			if (!strcmp(name, vm_names[i])) {
				c->v[i] = val;
				found++;
			}
		}
	}
	fclose(f);
	return found == VM_NR;
}

/*
 * Since @c0 was read, every counter of one group moved by exactly what
 * @want says, the others of the group not at all.  The groups:
 * hmm_range_fault*, which the driver's own read-back after a migration
 * moves too (@range), and all the others.  Then @c0 is read again.
 */
static void vm_check(struct __test_metadata *_metadata, struct vm_counts *c0,
		     bool range, const struct vm_want *want)
{
	struct vm_counts c1;
	unsigned int i;

	ASSERT_TRUE(vm_read(&c1));
	for (i = 0; i < VM_NR; i++) {
		long long got = c1.v[i] - c0->v[i], exp = 0;
		const struct vm_want *w;

		if (!strncmp(vm_names[i], VM_RANGE, strlen(VM_RANGE)) != range)
			continue;
		for (w = want; w->name; w++)
			if (!strcmp(w->name, vm_names[i]))
				exp = w->delta;
		EXPECT_EQ(exp, got)
			TH_LOG("%s moved by %lld, expected %lld", vm_names[i],
			       got, exp);
	}
	*c0 = c1;
}

/*
 * A test of the counters skips when the kernel has none (a kernel without
 * this series, or without CONFIG_VM_EVENT_COUNTERS).
 */
#define VM_MISSING	"no hmm_* counters in /proc/vmstat"

/*
 * A migration to the device and back counts each page once each way; a
 * THP that moves whole counts its pages and one large folio.
 */
TEST_F(hmm, vmstat_migrate_both_ways)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	struct tbuf *t;
	struct vm_counts c0;
	long long n;

	ASSERT_NE(NULL, b);
	if (!vm_read(&c0))
		SKIP(return, VM_MISSING);
	pattern_fill(b->cpu, b->size, 180);
	ASSERT_TRUE(vm_read(&c0));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(16, c.cpages);
	vm_check(_metadata, &c0, false,
		 VM_WANT({ "hmm_migrate_to_device", 16 }));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(16, c.cpages);
	vm_check(_metadata, &c0, false, VM_WANT({ "hmm_migrate_to_ram", 16 }));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 180));
	tbuf_free(b);

	/* a THP: whole into a private device, page by page into a coherent one */
	t = tbuf_thp(self->ps, 181);
	ASSERT_NE(NULL, t);
	n = t->npages;
	ASSERT_TRUE(vm_read(&c0));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, t, &c));
	ASSERT_EQ(n, c.cpages);
	vm_check(_metadata, &c0, false,
		 VM_WANT({ "hmm_migrate_to_device", n },
			 { "hmm_migrate_to_device_large",
			   variant->large_folios ? 1 : 0 }));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, t, &c));
	ASSERT_EQ(n, c.cpages);
	vm_check(_metadata, &c0, false,
		 VM_WANT({ "hmm_migrate_to_ram", n },
			 { "hmm_migrate_to_ram_large",
			   variant->large_folios ? 1 : 0 }));
	ASSERT_EQ(-1, pattern_check(t->cpu, t->size, 181));
	tbuf_free(t);
}

/*
 * A CPU read of one private device page is one device fault that brings
 * that page home; a coherent page is read where it is, nothing counts.
 */
TEST_F(hmm, vmstat_cpu_fault)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	struct vm_counts c0;

	ASSERT_NE(NULL, b);
	if (!vm_read(&c0))
		SKIP(return, VM_MISSING);
	pattern_fill(b->cpu, b->size, 182);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(16, c.cpages);
	ASSERT_TRUE(vm_read(&c0));
	ASSERT_EQ(-1, pattern_check_from(tb_page(b, self->ps, 3), self->ps,
					 182, 3 * self->ps));
	if (variant->cpu_in_place)
		vm_check(_metadata, &c0, false, VM_NONE);
	else
		vm_check(_metadata, &c0, false,
			 VM_WANT({ "hmm_device_fault", 1 },
				 { "hmm_migrate_to_ram", 1 }));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	vm_check(_metadata, &c0, false,
		 VM_WANT({ "hmm_migrate_to_ram", variant->cpu_in_place ? 16 : 15 }));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 182));
	tbuf_free(b);
}

/* Pin page @i of @b long-term through gup_test; returns the gup fd. */
static int pin_one(struct __test_metadata *_metadata, struct tbuf *b,
		   size_t ps, unsigned long i)
{
	struct pin_longterm_test pin;
	int gfd = gup_open();

	if (gfd < 0)
		return gfd;
	ioctl(gfd, PIN_LONGTERM_TEST_STOP);
	memset(&pin, 0, sizeof(pin));
	pin.addr = (uintptr_t)tb_page(b, ps, i);
	pin.size = ps;
	pin.flags = PIN_LONGTERM_TEST_FLAG_USE_WRITE;
	if (ioctl(gfd, PIN_LONGTERM_TEST_START, &pin)) {
		TH_LOG("PIN_LONGTERM_TEST_START: %s", strerror(errno));
		close(gfd);
		return -1;
	}
	return gfd;
}

/*
 * A pinned page stays in system memory, counted once as left behind for
 * its pin, while the others move; unpinned, it moves too.
 */
TEST_F(hmm, vmstat_pinned_page_left)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	struct vm_counts c0;
	int gfd;

	ASSERT_NE(NULL, b);
	if (!vm_read(&c0))
		SKIP(return, VM_MISSING);
	pattern_fill(b->cpu, b->size, 183);
	gfd = pin_one(_metadata, b, self->ps, 5);
	ASSERT_LE(0, gfd) TH_LOG(GUP_TEST_PATH ": %s", strerror(errno));
	ASSERT_TRUE(vm_read(&c0));
	ASSERT_EQ(-ENOENT, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	vm_check(_metadata, &c0, false,
		 VM_WANT({ "hmm_migrate_to_device", 15 },
			 { "hmm_migrate_left_pinned", 1 }));
	ASSERT_EQ(0, ioctl(gfd, PIN_LONGTERM_TEST_STOP));
	close(gfd);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(16, c.cpages);
	vm_check(_metadata, &c0, false, VM_WANT({ "hmm_migrate_to_device", 1 }));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	vm_check(_metadata, &c0, false, VM_WANT({ "hmm_migrate_to_ram", 16 }));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 183));
	tbuf_free(b);
}

/*
 * Device pages another migration holds locked (HMM_DMIRROR_FLAG_HOLD_LOCKED
 * on a first open file) are left behind by a migration through a second
 * one, each counted as locked; the first then moves them.
 */
TEST_F(hmm, vmstat_locked_page_left)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 4, RW);
	struct vm_counts c0;
	struct holder h;
	pthread_t th;
	int fd2;

	ASSERT_NE(NULL, b);
	if (!vm_read(&c0))
		SKIP(return, VM_MISSING);
	pattern_fill(b->cpu, b->size, 184);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(4, c.cpages);
	fd2 = dev_open(variant->unit);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, set_flags(self->fd, HMM_DMIRROR_FLAG_HOLD_LOCKED));
	ASSERT_TRUE(vm_read(&c0));
	h = (struct holder){ .fd = self->fd, .addr = b->cpu,
			     .npages = b->npages };
	ASSERT_EQ(0, pthread_create(&th, NULL, holder_fn, &h));
	usleep(150000);
	ASSERT_EQ(0, tb_cmd(fd2, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(0, c.cpages);
	ASSERT_EQ(0, pthread_join(th, NULL));
	ASSERT_EQ(0, h.ret);
	vm_check(_metadata, &c0, false,
		 VM_WANT({ "hmm_migrate_left_locked", 4 },
			 { "hmm_migrate_to_ram", 4 }));
	ASSERT_EQ(0, set_flags(self->fd, 0));
	close(fd2);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 184));
	tbuf_free(b);
}

/*
 * HMM_DMIRROR_FLAG_FAIL_ALLOC on a THP.  Into a private device the driver
 * finds no huge folio and answers with small pages: the core splits the
 * THP behind its migration entries and every page moves, none is left
 * behind.  Out of it, a device folio answered with small pages is split
 * once and its pages move.  A coherent device takes THPs page by page
 * anyway: nothing is left, nothing split.
 */
TEST_F(hmm, vmstat_fail_alloc)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_thp(self->ps, 185);
	struct vm_counts c0;
	long long n;

	ASSERT_NE(NULL, b);
	if (!vm_read(&c0))
		SKIP(return, VM_MISSING);
	n = b->npages;
	ASSERT_EQ(0, set_flags(self->fd, HMM_DMIRROR_FLAG_FAIL_ALLOC));
	ASSERT_TRUE(vm_read(&c0));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(n, c.cpages);
	vm_check(_metadata, &c0, false,
		 VM_WANT({ "hmm_migrate_to_device", n }));
	ASSERT_EQ(0, set_flags(self->fd, 0));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	vm_check(_metadata, &c0, false, VM_WANT({ "hmm_migrate_to_ram", n }));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 185));
	tbuf_free(b);

	b = tbuf_thp(self->ps, 186);
	ASSERT_NE(NULL, b);
	ASSERT_TRUE(vm_read(&c0));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	vm_check(_metadata, &c0, false,
		 VM_WANT({ "hmm_migrate_to_device", n },
			 { "hmm_migrate_to_device_large",
			   variant->large_folios ? 1 : 0 }));
	ASSERT_EQ(0, set_flags(self->fd, HMM_DMIRROR_FLAG_FAIL_ALLOC));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(0, set_flags(self->fd, 0));
	vm_check(_metadata, &c0, false,
		 VM_WANT({ "hmm_migrate_to_ram", n },
			 { "hmm_device_folio_split",
			   variant->large_folios ? 1 : 0 }));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 186));
	tbuf_free(b);
}

/*
 * hmm_range_fault(): a device read of pages never touched is one call
 * that faults each page in (the zero page); a device write of them then
 * faults each again (copy-on-write of the zero page), which invalidates
 * the range under the call: it returns -EBUSY once and the driver's
 * second call finds every page writable.  A snapshot faults nothing.
 */
TEST_F(hmm, vmstat_range_fault)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_huge_slots(self->ps, 1);
	struct vm_counts c0, m0;

	ASSERT_NE(NULL, b);
	/*
	 * Four small pages inside one PMD: the driver looks and faults a
	 * PMD's worth at a time, so a buffer across a PMD boundary would
	 * take two calls where one is counted.
	 */
	ASSERT_EQ(0, madvise(b->cpu, b->size, MADV_NOHUGEPAGE));
	b->npages = 4;
	b->size = 4 * self->ps;
	if (!vm_read(&m0))
		SKIP(return, VM_MISSING);
	ASSERT_TRUE(vm_read(&c0));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	vm_check(_metadata, &c0, true,
		 VM_WANT({ "hmm_range_fault", 1 },
			 { "hmm_range_fault_pages", 4 }));
	pattern_fill(b->dev, b->size, 187);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_WRITE, b, &c));
	vm_check(_metadata, &c0, true,
		 VM_WANT({ "hmm_range_fault", 2 },
			 { "hmm_range_fault_pages", 4 },
			 { "hmm_range_fault_busy", 1 }));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, b, &c));
	vm_check(_metadata, &c0, true, VM_WANT({ "hmm_range_fault", 1 }));
	vm_check(_metadata, &m0, false, VM_NONE);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 187));
	tbuf_free(b);
}

/* Where tracefs is: its own mount point, or under debugfs. */
static const char *trace_dir(void)
{
	static const char *const dirs[] = {
		"/sys/kernel/tracing", "/sys/kernel/debug/tracing",
	};
	char path[96];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(path, sizeof(path), "%s/events/migrate_device",
			 dirs[i]);
		if (!access(path, F_OK))
			return dirs[i];
	}
	return NULL;
}

/* Write @s to tracefs file @name; 0 or -errno. */
static int trace_write(const char *dir, const char *name, const char *s)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return file_write(path, s);
}

/* The whole trace buffer, as text (free() it); NULL on error. */
static char *trace_read(const char *dir)
{
	size_t len = 0, cap = 1 << 16;
	char path[160], *buf = malloc(cap);
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/trace", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !buf) {
		free(buf);
		return NULL;
	}
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += n;
		if (cap - len < 4096) {
			char *more = realloc(buf, cap * 2);

			if (!more)
				break;
			buf = more;
			cap *= 2;
		}
	}
	close(fd);
	buf[len] = 0;
	return buf;
}

/*
 * Over the lines of @buf for event @event, the number of lines and the
 * sum of the values of field @key (in hex after "0x", else decimal).
 */
static unsigned long trace_sum(const char *buf, const char *event,
			       const char *key, unsigned long *lines)
{
	char ev[64], k[32];
	const char *p = buf;
	unsigned long sum = 0;

	snprintf(ev, sizeof(ev), " %s: ", event);
	snprintf(k, sizeof(k), " %s=", key);
	*lines = 0;
	while ((p = strstr(p, ev))) {
		const char *eol = strchr(p, '\n'), *f = strstr(p, k);

		(*lines)++;
		if (f && (!eol || f < eol))
			sum += strtoul(f + strlen(k), NULL, 0);
		p += strlen(ev);
	}
	return sum;
}

/*
 * With the events enabled (and a filter on the left-behind event), a
 * migration of 16 pages, one of them pinned, shows: the setup and
 * collect steps with 15 pages collected, one migrate_device_left event for
 * the pinned page's pfn with reason "pinned", the pages and finalize
 * steps with 15 moved; and hmm_range_fault() events from the driver's
 * read-back.  A filter that wants another reason hides the left event.
 */
TEST_F(hmm, trace_pinned_page_left)
{
	const char *dir = trace_dir();
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_anon(self->ps, 16, RW);
	unsigned long n, sum, pfn;
	char want[64], *buf;
	int gfd, pm;

	ASSERT_NE(NULL, b);
	if (!dir)
		SKIP(return, "no migrate_device events in tracefs");
	pattern_fill(b->cpu, b->size, 188);
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, pm);
	pfn = pagemap_get_pfn(pm, tb_page(b, self->ps, 7));
	close(pm);
	ASSERT_NE(-1UL, pfn);
	gfd = pin_one(_metadata, b, self->ps, 7);
	ASSERT_LE(0, gfd) TH_LOG(GUP_TEST_PATH ": %s", strerror(errno));

	ASSERT_EQ(0, trace_write(dir, "tracing_on", "0"));
	ASSERT_EQ(0, trace_write(dir, "trace", ""));
	ASSERT_EQ(0, trace_write(dir, "events/migrate_device/enable", "1"));
	ASSERT_EQ(0, trace_write(dir, "events/hmm/enable", "1"));
	ASSERT_GT(0, trace_write(dir,
				 "events/migrate_device/migrate_device_left/filter",
				 "no_such_field == 1"));
	/* reason 1 is "locked": the pinned page must not show */
	ASSERT_EQ(0, trace_write(dir,
				 "events/migrate_device/migrate_device_left/filter",
				 "reason == 1"));
	ASSERT_EQ(0, trace_write(dir, "tracing_on", "1"));
	ASSERT_EQ(-ENOENT, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(0, trace_write(dir, "tracing_on", "0"));
	buf = trace_read(dir);
	ASSERT_NE(NULL, buf);
	trace_sum(buf, "migrate_device_left", "nr", &n);
	EXPECT_EQ(0, n) TH_LOG("filtered out, yet:\n%s", buf);
	free(buf);

	/* the same on the way back, with the filter for "pinned" (0) */
	ASSERT_EQ(0, trace_write(dir,
				 "events/migrate_device/migrate_device_left/filter",
				 "reason == 0 && nr == 1"));
	ASSERT_EQ(0, trace_write(dir, "trace", ""));
	ASSERT_EQ(0, trace_write(dir, "tracing_on", "1"));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(15, c.cpages);
	ASSERT_EQ(-ENOENT, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(0, trace_write(dir, "tracing_on", "0"));
	buf = trace_read(dir);
	ASSERT_NE(NULL, buf);

	/* one page left, the pinned one, for its pin */
	sum = trace_sum(buf, "migrate_device_left", "nr", &n);
	EXPECT_EQ(1, n);
	EXPECT_EQ(1, sum);
	snprintf(want, sizeof(want), "pfn=0x%lx nr=1 reason=pinned", pfn);
	EXPECT_NE(NULL, strstr(buf, want))
		TH_LOG("no \"%s\" in:\n%s", want, buf);
	/* both migrations: the 16 pages collected but the pinned one */
	EXPECT_EQ(32, trace_sum(buf, "migrate_vma_setup", "npages", &n));
	EXPECT_EQ(30, trace_sum(buf, "migrate_vma_setup", "collected", &n));
	EXPECT_EQ(30, trace_sum(buf, "migrate_vma_setup", "cpages", &n));
	EXPECT_EQ(30, trace_sum(buf, "migrate_vma_collect", "collected", &n));
	EXPECT_EQ(30, trace_sum(buf, "migrate_vma_pages", "moved", &n));
	EXPECT_EQ(0, trace_sum(buf, "migrate_vma_pages", "left", &n));
	EXPECT_EQ(30, trace_sum(buf, "migrate_vma_finalize", "moved", &n));
	EXPECT_EQ(0, trace_sum(buf, "migrate_vma_finalize", "left", &n));
	/* the read-back after the migration to the device */
	trace_sum(buf, "hmm_range_fault_start", "start", &n);
	EXPECT_LT(0, n);
	trace_sum(buf, "hmm_range_fault_end", "ret", &sum);
	EXPECT_EQ(n, sum);
	free(buf);

	ASSERT_EQ(0, trace_write(dir,
				 "events/migrate_device/migrate_device_left/filter",
				 "0"));
	ASSERT_EQ(0, trace_write(dir, "events/migrate_device/enable", "0"));
	ASSERT_EQ(0, trace_write(dir, "events/hmm/enable", "0"));
	ASSERT_EQ(0, trace_write(dir, "trace", ""));
	ASSERT_EQ(0, trace_write(dir, "tracing_on", "1"));
	ASSERT_EQ(0, ioctl(gfd, PIN_LONGTERM_TEST_STOP));
	close(gfd);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 188));
	tbuf_free(b);
}

/*
 * The split counts of the step events.  Half of a THP migrated: the
 * collect walk splits it (the range does not cover it whole).  A whole
 * THP migrated with HMM_DMIRROR_FLAG_FAIL_ALLOC to a private unit: the
 * driver answers it with small pages and the pages step splits it; the
 * collect walk does not.  A coherent unit never asks for compound entries,
 * so there the collect walk splits it.  Both move every page asked for.
 */
TEST_F(hmm, trace_split_counts)
{
	const char *dir = trace_dir();
	struct hmm_dmirror_cmd c;
	struct tbuf *b = tbuf_thp(self->ps, 189);
	unsigned long n, half;
	char *buf;

	ASSERT_NE(NULL, b);
	if (!dir)
		SKIP(return, "no migrate_device events in tracefs");
	half = b->npages / 2;
	ASSERT_EQ(0, trace_write(dir, "trace", ""));
	ASSERT_EQ(0, trace_write(dir, "events/migrate_device/enable", "1"));
	ASSERT_EQ(0, trace_write(dir, "tracing_on", "1"));
	ASSERT_EQ(0, tb_cmd_range(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b,
				  self->ps, 0, half, &c));
	ASSERT_EQ(0, trace_write(dir, "tracing_on", "0"));
	ASSERT_EQ(half, c.cpages);
	buf = trace_read(dir);
	ASSERT_NE(NULL, buf);
	EXPECT_EQ(1, trace_sum(buf, "migrate_vma_collect", "split", &n));
	EXPECT_EQ(0, trace_sum(buf, "migrate_vma_pages", "split", &n));
	EXPECT_EQ(half, trace_sum(buf, "migrate_vma_pages", "moved", &n));
	free(buf);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 189));
	tbuf_free(b);

	b = tbuf_thp(self->ps, 190);
	ASSERT_NE(NULL, b);
	ASSERT_EQ(0, set_flags(self->fd, HMM_DMIRROR_FLAG_FAIL_ALLOC));
	ASSERT_EQ(0, trace_write(dir, "trace", ""));
	ASSERT_EQ(0, trace_write(dir, "tracing_on", "1"));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(0, trace_write(dir, "tracing_on", "0"));
	ASSERT_EQ(0, set_flags(self->fd, 0));
	ASSERT_EQ(b->npages, c.cpages);
	buf = trace_read(dir);
	ASSERT_NE(NULL, buf);
	/* a coherent unit asks for no compound entries: the walk splits */
	EXPECT_EQ(!variant->large_folios,
		  trace_sum(buf, "migrate_vma_collect", "split", &n));
	EXPECT_EQ(variant->large_folios,
		  trace_sum(buf, "migrate_vma_pages", "split", &n));
	EXPECT_EQ(b->npages, trace_sum(buf, "migrate_vma_pages", "moved", &n));
	EXPECT_EQ(0, trace_sum(buf, "migrate_vma_pages", "left", &n));
	free(buf);
	ASSERT_EQ(0, trace_write(dir, "events/migrate_device/enable", "0"));
	ASSERT_EQ(0, trace_write(dir, "trace", ""));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 190));
	tbuf_free(b);
}

/* ------------------------------------------------------------------ */
/* Memory accounting                                                   */
/* ------------------------------------------------------------------ */

/*
 * Where the memory counters of a process stand when its anonymous pages
 * move to a device. Both kinds of device are accounted like system memory:
 * a migrated page keeps its place in MM_ANONPAGES (neither the migration
 * entry nor the device page that replaces it changes the counter, and
 * unmapping a device-private entry decrements it like a present page), a
 * page the device provides for an empty slot is added to it when it is
 * mapped (mvma_insert_page()), and munmap() takes it all away again.
 * RssAnon is exact here: 6.12.117 sums the per-CPU parts of the counter
 * for /proc (get_mm_counter_sum()), and the test allocates nothing while
 * it measures. smaps agrees for the mapping itself (a device-private
 * entry counts as resident there).
 */
TEST_F_TIMEOUT(hmm, rss_follows_migration, 120)
{
	const unsigned long n = 1024;
	const unsigned long kb = n * self->ps / 1024;
	struct tbuf *b = tbuf_anon(self->ps, n, RW);
	struct tbuf *h = tbuf_anon(self->ps, n, RW);
	struct hmm_dmirror_cmd c;
	long r0;

	ASSERT_NE(NULL, b);
	ASSERT_NE(NULL, h);
	/* In place before r0: buffers the driver writes, what calls allocate. */
	tb_touch_dev(b);
	tb_touch_dev(h);
	ASSERT_LE(0, rss_anon_pages(self->ps));
	ASSERT_EQ(0, smaps_kb(b->cpu, "Rss"));
	r0 = rss_anon_pages(self->ps);

	pattern_fill(b->cpu, b->size, 240);
	ASSERT_EQ(r0 + n, rss_anon_pages(self->ps));
	ASSERT_EQ(kb, smaps_kb(b->cpu, "Rss"));

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(n, c.cpages);
	ASSERT_EQ(r0 + n, rss_anon_pages(self->ps));
	ASSERT_EQ(kb, smaps_kb(b->cpu, "Rss"));

	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	ASSERT_EQ(n, c.cpages);
	ASSERT_EQ(r0 + n, rss_anon_pages(self->ps));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 240));

	/* Never touched: every page comes from the device. */
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, h, &c));
	ASSERT_EQ(n, c.cpages);
	ASSERT_EQ(-1, bytes_check(h->dev, h->size, 0));
	ASSERT_EQ(r0 + 2 * n, rss_anon_pages(self->ps));
	ASSERT_EQ(kb, smaps_kb(h->cpu, "Rss"));

	ASSERT_EQ(0, munmap(h->cpu, h->size));
	ASSERT_EQ(r0 + n, rss_anon_pages(self->ps));
	ASSERT_EQ(0, munmap(b->cpu, b->size));
	ASSERT_EQ(r0, rss_anon_pages(self->ps));
	tbuf_free(h);
	tbuf_free(b);
}

#define MEMCG_PAGES		4096
#define MEMCG_CHARGE_BATCH	64	/* mm/memcontrol.c, 6.12 */
#define FOLIO_BATCH		31	/* include/linux/pagevec.h */

struct memcg_sample {
	long anon;	/* memory.stat "anon", in pages */
	long current;	/* memory.current, in pages */
};

/*
 * Read the counters of cgroup @cg. memory.stat is only exact once the
 * kernel has folded the per-CPU updates in, which a read does only after
 * more than MEMCG_CHARGE_BATCH updates per online CPU: so first fault in
 * and drop @scratch (MEMCG_CHARGE_BATCH pages per CPU: a charge, a fault
 * event and an NR_ANON_MAPPED update each way and more), which leaves
 * "anon" as it was.
 */
static void memcg_sample(const char *cg, char *scratch, size_t scratch_size,
			 size_t ps, struct memcg_sample *s)
{
	char path[128];
	size_t off;

	for (off = 0; off < scratch_size; off += ps)
		scratch[off] = 1;
	CHILD_CHECK(!madvise(scratch, scratch_size, MADV_DONTNEED));
	snprintf(path, sizeof(path), "%s/memory.stat", cg);
	s->anon = file_value(path, "anon") / (long)ps;
	snprintf(path, sizeof(path), "%s/memory.current", cg);
	s->current = file_value(path, NULL) / (long)ps;
	CHILD_CHECK(s->anon >= 0 && s->current >= 0);
}

/*
 * @n untouched pages of anonymous memory for memcg_child(): 4 KiB pages
 * (@fsize == @ps), or room for folios of @fsize bytes, aligned to it, that
 * a fault will allocate (the knobs set by the caller allow that size).
 */
static struct tbuf *memcg_buf(size_t ps, unsigned long n, size_t fsize)
{
	struct tbuf *b;

	if (fsize == ps)
		return tbuf_anon(ps, n, RW);
	b = tbuf_mthp(ps, fsize, n * ps / fsize, 0);
	if (b && madvise(b->cpu, b->size, MADV_DONTNEED)) {
		tbuf_free(b);
		return NULL;
	}
	return b;
}

/*
 * The child of memcg_follows_migration, in cgroup @cg: what is charged
 * there as its pages, in folios of @fsize bytes, move to device @unit and
 * back. "anon" is exact.
 * memory.current also counts charges that stand for no page of ours:
 * each CPU's charge stock (up to MEMCG_CHARGE_BATCH pages), freed pages
 * still held by a CPU's LRU batch (FOLIO_BATCH), the page tables of the
 * buffers and kernel objects; that is its slack, a few percent of the
 * MEMCG_PAGES that move.
 */
static void memcg_child(const char *cg, int unit, size_t ps, size_t fsize)
{
	const long n = MEMCG_PAGES;
	long ncpus = sysconf(_SC_NPROCESSORS_CONF);
	long slack = ncpus * (MEMCG_CHARGE_BATCH + FOLIO_BATCH) + 32;
	size_t scratch_size = ncpus * MEMCG_CHARGE_BATCH * ps;
	struct hmm_dmirror_stats st0, st1;
	struct memcg_sample s0, s1, s;
	struct hmm_dmirror_cmd c;
	unsigned int order;
	struct tbuf *b, *h;
	char path[128], pid[16];
	char *scratch;
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	snprintf(pid, sizeof(pid), "%d", getpid());
	fd = open(path, O_WRONLY | O_CLOEXEC);
	CHILD_CHECK(fd >= 0 && write(fd, pid, strlen(pid)) > 0);
	close(fd);

	fd = dev_open(unit);
	b = memcg_buf(ps, n, fsize);
	h = memcg_buf(ps, n, fsize);
	scratch = mmap(NULL, scratch_size, RW, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	CHILD_CHECK(fd >= 0 && b && h && scratch != MAP_FAILED);
	tb_touch_dev(b);
	tb_touch_dev(h);
	memcg_sample(cg, scratch, scratch_size, ps, &s0);
	memcg_sample(cg, scratch, scratch_size, ps, &s0);

	pattern_fill(b->cpu, b->size, 250);
	/* a private unit takes the folios whole, a coherent one page by page */
	order = unit < 2 ? __builtin_ctzl(fsize / ps) : 0;
	/*
	 * Pages that come back small from a coherent unit lie in PMD-sized
	 * slots where THPs are enabled: khugepaged would collapse them, and
	 * while it does, the new THP is charged before the small pages are
	 * freed.  Keep it out of the buffer, whose folios are in place now.
	 */
	if (fsize > ps && !order)
		CHILD_CHECK(!madvise(b->cpu, b->size, MADV_NOHUGEPAGE));
	memcg_sample(cg, scratch, scratch_size, ps, &s1);
	child_expect("anon after touching", s1.anon, s0.anon + n, 0);
	child_expect("current after touching", s1.current, s0.current + n,
		     slack);

	/* The charge moves to the device page with the data. */
	CHILD_CHECK(!ioctl(fd, HMM_DMIRROR_STATS, &st0));
	CHILD_CHECK(!tb_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	CHILD_CHECK(c.cpages == (unsigned long)n);
	CHILD_CHECK(!ioctl(fd, HMM_DMIRROR_STATS, &st1));
	CHILD_CHECK(st1.folios_to_device[order] - st0.folios_to_device[order] ==
		    n >> order);
	memcg_sample(cg, scratch, scratch_size, ps, &s);
	child_expect("anon on the device", s.anon, s1.anon, 0);
	child_expect("current on the device", s.current, s1.current, slack);

	CHILD_CHECK(!tb_cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, &c));
	CHILD_CHECK(c.cpages == (unsigned long)n);
	CHILD_CHECK(pattern_check(b->cpu, b->size, 250) < 0);
	memcg_sample(cg, scratch, scratch_size, ps, &s);
	child_expect("anon back home", s.anon, s1.anon, 0);
	child_expect("current back home", s.current, s1.current, slack);

	/* Empty slots filled by the device are charged when mapped. */
	CHILD_CHECK(!tb_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, h, &c));
	CHILD_CHECK(c.cpages == (unsigned long)n);
	memcg_sample(cg, scratch, scratch_size, ps, &s);
	child_expect("anon with device holes", s.anon, s1.anon + n, 0);
	child_expect("current with device holes", s.current, s1.current + n,
		     slack);

	CHILD_CHECK(!munmap(b->cpu, b->size) && !munmap(h->cpu, h->size));
	memcg_sample(cg, scratch, scratch_size, ps, &s);
	child_expect("anon after munmap", s.anon, s0.anon, 0);
	child_expect("current after munmap", s.current, s0.current, slack);
	_exit(0);
}

/*
 * Memory cgroup charges follow pages into device memory and back: a
 * child in a new cgroup touches MEMCG_PAGES pages, migrates them to the
 * device and back, and has the device fill MEMCG_PAGES empty slots
 * (memcg_child() says what is checked). The charge of a page moving either
 * way is handed over to the new page (folio_migrate_flags() calls
 * mem_cgroup_migrate()), a page filling an empty slot is charged to the
 * mm's cgroup (mvma_insert_page()), and a freed device page is uncharged
 * (free_zone_device_folio()). None of this looks at the kind of device
 * memory, and NR_ANON_MAPPED ("anon") follows the rmap, which treats a
 * device-private entry like a mapped page: so coherent and private pages
 * are charged and counted alike, both staying in the cgroup while on the
 * device (neither is on an LRU list, which only the active/inactive
 * counters would show).
 */
static void memcg_run(struct __test_metadata *_metadata, int unit,
		      size_t ps, size_t fsize)
{
	char cg[64], path[96];
	int status, gone;
	pid_t pid;

	snprintf(cg, sizeof(cg), CGROUP_ROOT "/hmm-tests-%d", getpid());
	snprintf(path, sizeof(path), "%s/memory.current", cg);
	ASSERT_EQ(0, mkdir(cg, 0755))
		TH_LOG("mkdir %s: %s", cg, strerror(errno));
	if (access(path, R_OK)) {
		rmdir(cg);
		ASSERT_EQ(0, access(path, R_OK))
			TH_LOG("no memory controller in %s", cg);
	}
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		memcg_child(cg, unit, ps, fsize);
	status = child_wait(pid);
	gone = rmdir(cg) ? -errno : 0;
	ASSERT_EQ(0, status);
	ASSERT_EQ(0, gone);
}

TEST_F_TIMEOUT(hmm, memcg_follows_migration, 180)
{
	memcg_run(_metadata, variant->unit, self->ps, self->ps);
}

/*
 * The same with large folios: 64 KiB ones and THPs, which move to a
 * private device whole (a coherent one takes them page by page).  The
 * charge of a folio is handed over whole, and empty slots filled with a
 * device folio are charged for each of its pages.
 */
TEST_F_TIMEOUT(hmm, memcg_follows_large_folios, 300)
{
	static const unsigned long kb[] = { 64, 2048 };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(kb); i++) {
		mthp_only(_metadata, kb[i]);
		memcg_run(_metadata, variant->unit, self->ps, kb[i] << 10);
	}
}

/* ------------------------------------------------------------------ */
/* Bad input                                                           */
/* ------------------------------------------------------------------ */

/*
 * The range commands; @like names the command whose answers to bad input
 * a command shares (FOLIO_ORDERS is SNAPSHOT with other bytes), so that
 * an expectation set for one holds for both.
 */
static const struct {
	unsigned long req;
	const char *name;
	unsigned long like;
} range_cmds[] = {
	{ HMM_DMIRROR_READ, "READ" },
	{ HMM_DMIRROR_WRITE, "WRITE" },
	{ HMM_DMIRROR_MIGRATE_TO_DEV, "MIGRATE_TO_DEV" },
	{ HMM_DMIRROR_MIGRATE_TO_SYS, "MIGRATE_TO_SYS" },
	{ HMM_DMIRROR_SNAPSHOT, "SNAPSHOT" },
	{ HMM_DMIRROR_FOLIO_ORDERS, "FOLIO_ORDERS", HMM_DMIRROR_SNAPSHOT },
	{ HMM_DMIRROR_EXCLUSIVE, "EXCLUSIVE" },
	{ HMM_DMIRROR_CHECK_EXCLUSIVE, "CHECK_EXCLUSIVE" },
	{ HMM_DMIRROR_RELEASE, "RELEASE" },
};

#define NR_RANGE_CMDS	ARRAY_SIZE(range_cmds)

/*
 * The answer expected of each command, in range_cmds order: 0 or -errno,
 * or NOT_ISSUED for a command the case leaves out.  One answer each: the
 * driver's.  The unmodified 6.12 driver gives other answers to some bad
 * input; the harness lists those cases as expected to fail there
 * (config/stock-xfail.list).
 */
#define NOT_ISSUED	1

struct bad_expect {
	int ret[NR_RANGE_CMDS];
};

/*
 * Whether the bad_* cases issue range_cmds[@i]. RELEASE is left out for
 * 6.12's driver (the one without STATS): it does not look at the range or
 * the argument at all (ours refuses bad ones), and tears down every chunk
 * of the device under the device's lock, waiting for each page anybody
 * still holds.  After the cases 6.12 fails, that wait did not end (make
 * test-stock), and every later case and the module unload hung behind it.
 */
static bool bad_cmd_issued(const struct _test_data_hmm *self, unsigned int i)
{
	return self->stats || range_cmds[i].req != HMM_DMIRROR_RELEASE;
}

/*
 * Issue every range command with @addr/@npages/@ptr, in range_cmds order,
 * and check each result against @e.  The callers' inputs are such that no
 * command's side effects change a later one's result.  The device must
 * still work afterwards.
 */
static void bad_input_run(struct __test_metadata *_metadata,
			  struct _test_data_hmm *self, const char *what,
			  unsigned long addr, unsigned long npages,
			  unsigned long ptr, const struct bad_expect *e)
{
	struct hmm_dmirror_cmd c;
	unsigned int i;
	int ret;

	for (i = 0; i < NR_RANGE_CMDS; i++) {
		if (e->ret[i] == NOT_ISSUED || !bad_cmd_issued(self, i))
			continue;
		ret = dmirror_raw(self->fd, range_cmds[i].req, addr, npages,
				  ptr, &c);
		EXPECT_EQ(e->ret[i], ret)
			TH_LOG("%s: %s returned %d (%s)", what,
			       range_cmds[i].name, ret,
			       ret ? strerror(-ret) : "success");
	}
	device_sane(_metadata, self->fd, self->ps);
}

/* The same answer from every command. */
static void bad_expect_all(struct bad_expect *e, int ret)
{
	unsigned int i;

	for (i = 0; i < NR_RANGE_CMDS; i++)
		e->ret[i] = ret;
}

/* @ret from @req, and from the commands that answer like it. */
static void bad_expect_set(struct bad_expect *e, unsigned long req, int ret)
{
	unsigned int i;

	for (i = 0; i < NR_RANGE_CMDS; i++)
		if (range_cmds[i].req == req || range_cmds[i].like == req)
			e->ret[i] = ret;
}

/* An unaligned address is EINVAL for every command. */
TEST_F(hmm, bad_unaligned_addr)
{
	struct tbuf *b = tbuf_anon(self->ps, 2, RW);
	struct bad_expect e;

	ASSERT_NE(NULL, b);
	bad_expect_all(&e, -EINVAL);
	bad_input_run(_metadata, self, "addr + 1", (unsigned long)b->cpu + 1,
		      1, (unsigned long)b->dev, &e);
	bad_input_run(_metadata, self, "addr + 2048",
		      (unsigned long)b->cpu + self->ps / 2, 1,
		      (unsigned long)b->dev, &e);
	tbuf_free(b);
}

/* An empty range is EINVAL for every command. */
TEST_F(hmm, bad_zero_npages)
{
	struct tbuf *b = tbuf_anon(self->ps, 2, RW);
	struct bad_expect e;

	ASSERT_NE(NULL, b);
	bad_expect_all(&e, -EINVAL);
	bad_input_run(_metadata, self, "npages 0", (unsigned long)b->cpu, 0,
		      (unsigned long)b->dev, &e);
	tbuf_free(b);
}

/*
 * Ranges whose end wraps around the address space, or whose size in
 * bytes does not fit in 64 bits, are EINVAL for every command.
 */
TEST_F(hmm, bad_overflowing_range)
{
	struct tbuf *b = tbuf_anon(self->ps, 2, RW);
	unsigned long addr, shift = __builtin_ctzl(self->ps);
	struct bad_expect e;

	ASSERT_NE(NULL, b);
	addr = (unsigned long)b->cpu;
	bad_expect_all(&e, -EINVAL);
	bad_input_run(_metadata, self, "end wraps", addr, ~0UL >> shift,
		      (unsigned long)b->dev, &e);
	bad_input_run(_metadata, self, "last page + 1",
		      ~0UL & ~(self->ps - 1), 1, (unsigned long)b->dev, &e);
	bad_input_run(_metadata, self, "size == 2^64", addr,
		      1UL << (64 - shift), (unsigned long)b->dev, &e);
	bad_input_run(_metadata, self, "npages ~0", addr, ~0UL,
		      (unsigned long)b->dev, &e);

	/*
	 * Tests a 6.12 bug: 6.12 shifts npages without checking, so
	 * 2^52 + 1 pages become a one-page command that succeeds. Not
	 * issued to 6.12's driver (the one without STATS): the page its
	 * MIGRATE_TO_DEV then moves, it reads from the device-private
	 * struct page itself, and oopses.
	 */
	if (self->stats)
		bad_input_run(_metadata, self, "size == 2^64 + 1 page", addr,
			      (1UL << (64 - shift)) + 1,
			      (unsigned long)b->dev, &e);
	tbuf_free(b);
}

/*
 * A range far larger than anything mapped (2^36 pages from a mapped
 * buffer, reaching past the top of user space): EINVAL from every
 * command, before anything is touched.  (6.12 fails it wherever it first
 * notices: ENOMEM for the bounce buffer of READ/WRITE, EFAULT at the end
 * of the SNAPSHOT buffer, EBUSY from EXCLUSIVE; and it walks the whole
 * range for CHECK_EXCLUSIVE one page at a time, for hours; and its
 * MIGRATE_TO_DEV moves the mapped pages before failing, which its later
 * READ of device-private pages turns into an oops. Those two are issued
 * only to a driver with STATS.)
 */
TEST_F(hmm, bad_huge_npages)
{
	struct tbuf *b = tbuf_anon(self->ps, 4, RW);
	struct tbuf *out = tbuf_anon(self->ps, 1, RW);
	struct bad_expect e;

	ASSERT_NE(NULL, b);
	ASSERT_NE(NULL, out);
	pattern_fill(b->cpu, b->size, 150);
	bad_expect_all(&e, -EINVAL);
	if (!self->stats) {
		bad_expect_set(&e, HMM_DMIRROR_CHECK_EXCLUSIVE, NOT_ISSUED);
		bad_expect_set(&e, HMM_DMIRROR_MIGRATE_TO_DEV, NOT_ISSUED);
	}
	bad_input_run(_metadata, self, "npages 2^36", (unsigned long)b->cpu,
		      1UL << 36, (unsigned long)out->cpu, &e);
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 150));
	tbuf_free(b);
	tbuf_free(out);
}

/*
 * An address where nothing is mapped.  In user space the data commands
 * fault (EFAULT; EXCLUSIVE faults the range in first), migration finds no
 * VMA (EINVAL), a snapshot describes the page as an error, and
 * CHECK_EXCLUSIVE and RELEASE find nothing to do.  In the kernel's half
 * the range itself is refused: EINVAL from every command.
 */
static void bad_addr_body(struct __test_metadata *_metadata,
			  struct _test_data_hmm *self, const char *what,
			  unsigned long addr, bool user)
{
	struct tbuf *b = tbuf_anon(self->ps, 1, RW);
	struct hmm_dmirror_cmd c;
	struct bad_expect e;
	unsigned char m = 0;

	ASSERT_NE(NULL, b);
	bad_expect_all(&e, -EINVAL);
	if (user) {
		bad_expect_set(&e, HMM_DMIRROR_READ, -EFAULT);
		bad_expect_set(&e, HMM_DMIRROR_WRITE, -EFAULT);
		bad_expect_set(&e, HMM_DMIRROR_SNAPSHOT, NOT_ISSUED);
		bad_expect_set(&e, HMM_DMIRROR_EXCLUSIVE, -EFAULT);
		bad_expect_set(&e, HMM_DMIRROR_CHECK_EXCLUSIVE, 0);
		bad_expect_set(&e, HMM_DMIRROR_RELEASE, 0);
	}
	bad_input_run(_metadata, self, what, addr, 1, (unsigned long)b->dev,
		      &e);
	if (user) {
		ASSERT_EQ(0, dmirror_raw(self->fd, HMM_DMIRROR_SNAPSHOT, addr,
					 1, (unsigned long)&m, &c));
		ASSERT_EQ(1, c.cpages);
		ASSERT_EQ(SNAP_ERR, m);
	}
	tbuf_free(b);
}

TEST_F(hmm, bad_unmapped_addr)
{
	/*
	 * A one-page hole between two reserved pages: no mapping the test
	 * makes afterwards (all of them two pages or more) can land in it.
	 */
	char *r = mmap(NULL, 3 * self->ps, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	ASSERT_NE(MAP_FAILED, r);
	ASSERT_EQ(0, munmap(r + self->ps, self->ps));
	bad_addr_body(_metadata, self, "unmapped address",
		      (unsigned long)r + self->ps, true);
	ASSERT_EQ(SNAP_ERR, snap_one(self->fd, r + self->ps));
	ASSERT_EQ(0, munmap(r, 3 * self->ps));
}

TEST_F(hmm, bad_kernel_addr)
{
	/* Start of the upper (kernel) half on 48- and 57-bit layouts. */
	bad_addr_body(_metadata, self, "kernel address", 0xffff800000000000UL,
		      false);
	bad_addr_body(_metadata, self, "next to last page",
		      (~0UL & ~(self->ps - 1)) - self->ps, false);
}

/*
 * A valid range with a data pointer to unmapped memory: commands that
 * copy data fail with EFAULT (and leave the CPU's data intact), commands
 * that take no data succeed.
 */
TEST_F(hmm, bad_data_ptr)
{
	struct tbuf *hole = tbuf_anon(self->ps, 1, PROT_NONE);
	unsigned int i;

	ASSERT_NE(NULL, hole);
	for (i = 0; i < NR_RANGE_CMDS; i++) {
		unsigned long req = range_cmds[i].req;
		struct hmm_dmirror_cmd c;
		bool takes_data = req != HMM_DMIRROR_MIGRATE_TO_SYS &&
				  req != HMM_DMIRROR_CHECK_EXCLUSIVE &&
				  req != HMM_DMIRROR_RELEASE;
		struct tbuf *b;
		int ret;

		if (!bad_cmd_issued(self, i))
			continue;
		b = tbuf_anon(self->ps, 2, RW);
		ASSERT_NE(NULL, b);
		pattern_fill(b->cpu, b->size, 151);
		ret = dmirror(self->fd, req, b->cpu, 2, hole->cpu, &c);
		EXPECT_EQ(takes_data ? -EFAULT : 0, ret)
			TH_LOG("%s with a bad data pointer", range_cmds[i].name);
		ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 151));
		tbuf_free(b);
	}
	tbuf_free(hole);
	device_sane(_metadata, self->fd, self->ps);
}

/*
 * The ioctl argument itself is a bad pointer: EFAULT for every command,
 * STATS included (RELEASE may not read it at all).
 */
TEST_F(hmm, bad_arg_ptr)
{
	struct tbuf *hole = tbuf_anon(self->ps, 1, PROT_NONE);
	void *args[] = { NULL, NULL, (void *)1 };
	unsigned int i, j;
	int ret;

	ASSERT_NE(NULL, hole);
	args[1] = hole->cpu;
	for (j = 0; j < ARRAY_SIZE(args); j++) {
		for (i = 0; i < NR_RANGE_CMDS; i++) {
			if (!bad_cmd_issued(self, i))
				continue;
			ret = ioctl(self->fd, range_cmds[i].req, args[j]);
			ret = ret ? -errno : 0;
			if (range_cmds[i].req == HMM_DMIRROR_RELEASE &&
			    ret == 0)
				continue;
			EXPECT_EQ(-EFAULT, ret)
				TH_LOG("%s with arg %p", range_cmds[i].name,
				       args[j]);
		}
		ret = ioctl(self->fd, HMM_DMIRROR_STATS, args[j]);
		EXPECT_EQ(-EFAULT, ret ? -errno : 0)
			TH_LOG("STATS with arg %p", args[j]);
	}
	tbuf_free(hole);
	device_sane(_metadata, self->fd, self->ps);
}

/*
 * Commands the driver does not know, including known numbers with the
 * wrong direction or size and another driver's type: ENOTTY, with no
 * effect on a perfectly valid argument.  (6.12 says EINVAL for some.)
 */
TEST_F(hmm, bad_unknown_command)
{
	const unsigned long reqs[] = {
		_IOWR('H', 0x09, struct hmm_dmirror_cmd),
		_IOWR('H', 0x7f, struct hmm_dmirror_cmd),
		_IOWR('H', 0xff, struct hmm_dmirror_cmd),
		_IO('H', 0x00),
		_IOW('H', 0x02, struct hmm_dmirror_cmd),
		_IOWR('H', 0x02, __u64),
		_IOWR('h', 0x02, struct hmm_dmirror_cmd),
		_IOR('H', 0x08, __u32),
		0,
	};
	struct tbuf *b = tbuf_anon(self->ps, 2, RW);
	unsigned int i;
	int ret;

	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 152);
	for (i = 0; i < ARRAY_SIZE(reqs); i++) {
		struct hmm_dmirror_cmd c;

		ret = dmirror(self->fd, reqs[i], b->cpu, 2, b->dev, &c);
		EXPECT_EQ(-ENOTTY, ret)
			TH_LOG("request 0x%lx", reqs[i]);
	}
	snap_all(_metadata, self->fd, b->cpu, 2, SNAP_W);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, b, NULL));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 152));
	tbuf_free(b);
}

/*
 * A device reading its own private pages after the CPU page tables
 * changed under its mirror (here an mprotect() round trip) gets the data
 * and leaves the pages on the device.
 *
 * Tests a 6.12 bug: the 6.12 driver then copies from the device-private
 * struct page itself, which has no memory behind it (an oops), so the
 * private variant only runs against the rewritten driver (the one with
 * STATS). Coherent pages are real memory and work on 6.12.
 */
TEST_F(hmm, read_own_device_pages_after_invalidation)
{
	struct hmm_dmirror_cmd c;
	struct tbuf *b;

	if (!variant->cpu_in_place && !self->stats) {
		TH_LOG("6.12 driver: not run (it would oops)");
		return;
	}
	b = tbuf_anon(self->ps, 8, RW);
	ASSERT_NE(NULL, b);
	pattern_fill(b->cpu, b->size, 160);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, &c));
	ASSERT_EQ(0, mprotect(b->cpu, b->size, PROT_READ));
	ASSERT_EQ(0, mprotect(b->cpu, b->size, RW));
	memset(b->dev, 0, b->size);
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_READ, b, &c));
	ASSERT_EQ(8, c.cpages);
	ASSERT_EQ(-1, pattern_check(b->dev, b->size, 160));
	ASSERT_EQ(0, tb_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, b, &c));
	ASSERT_EQ(snap_local(variant, true) & ~(SNAP_R | SNAP_W),
		  b->snap[0] & ~(SNAP_R | SNAP_W));
	ASSERT_EQ(-1, pattern_check(b->cpu, b->size, 160));
	tbuf_free(b);
}

TEST_HARNESS_MAIN
