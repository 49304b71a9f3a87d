// SPDX-License-Identifier: GPL-2.0
/*
 * hmm-bench: time the HMM paths through the test driver, using only the
 * Linux 6.12 test-driver ABI so the same binary runs on the stock kernel
 * and on ours. One run does one repetition of every selected cell and
 * prints one line per cell:
 *
 *   BENCH <workload> <memory> <bytes> <microseconds>
 *
 * Workloads:
 *   migrate-sys    migrate to device memory, then back with MIGRATE_TO_SYS
 *   migrate-fault  migrate to device memory, then back by CPU faults
 *   read-pop       device read of populated memory (hmm_range_fault + copy)
 *   read-unpop     device read of never-touched memory (faulting)
 *   snapshot       snapshot of populated memory (hmm_range_fault, no fault)
 *   memcpy         CPU memcpy of the same size: the bandwidth reference
 *   fault-latency  one 2 MiB THP migrated to device memory; time one CPU
 *                  read in its middle plus one read per page, i.e. from
 *                  the first CPU fault until all 2 MiB are back in system
 *                  memory, however many faults the kernel takes for that.
 *                  THP memory only, always 2 MiB whatever -s says, one line
 *                  per run after the other cells.
 * Memory: "4k" (MADV_NOHUGEPAGE), "thp" (2 MiB aligned, MADV_HUGEPAGE) or
 * "64k" (2 MiB aligned, 64 KiB folios: the mTHP knob of that size set to
 * always and the 2 MiB one to never while the rows run, then restored).
 * A kernel that cannot migrate a 64 KiB folio (Linux 6.12 leaves every
 * large folio mapped by ptes where it is, so MIGRATE_TO_DEV ends in
 * ENOENT) gets a line "BENCH-NA <workload> 64k <bytes> <error>" instead.
 *
 * Usage: hmm-bench [-s SIZE_MiB[,SIZE...]] [-w WORKLOAD[,...]] [-m 4k,thp,64k]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "tests/hmm-util.h"

#define THP_SIZE	(2UL << 20)
#define MTHP_SIZE	(64UL << 10)
#define MTHP_DIR	"/sys/kernel/mm/transparent_hugepage/"

/* The kinds of memory, as -m names them. */
enum mem { MEM_4K, MEM_THP, MEM_64K, NR_MEM };
static const char *const mem_names[NR_MEM] = { "4k", "thp", "64k" };

static const char *const workloads[] = {
	"migrate-sys", "migrate-fault", "read-pop", "read-unpop", "snapshot",
	"memcpy", "fault-latency",
};

static long page_size;
static int dev_fd;
/* a migration of this kind of memory failed with this error: skip the rest */
static int mem_failed[NR_MEM];

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int selected(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	if (!list)
		return 1;
	while ((p = strstr(p, name))) {
		if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return 1;
		p += n;
	}
	return 0;
}

static const char *const mthp_knobs[] = {
	MTHP_DIR "hugepages-64kB/enabled", MTHP_DIR "hugepages-2048kB/enabled",
};
static char mthp_saved[2][32];

/* 64 KiB folios for the next faults, or exit; mthp_restore() undoes it. */
static void mthp_on(void)
{
	unsigned int i;

	for (i = 0; i < 2; i++) {
		if (knob_get(mthp_knobs[i], mthp_saved[i], sizeof(mthp_saved[i])) ||
		    knob_set(mthp_knobs[i], i ? "never" : "always")) {
			perror(mthp_knobs[i]);
			exit(1);
		}
	}
}

static void mthp_restore(void)
{
	unsigned int i;

	for (i = 0; i < 2; i++) {
		if (mthp_saved[i][0] && knob_set(mthp_knobs[i], mthp_saved[i]))
			perror(mthp_knobs[i]);
		mthp_saved[i][0] = 0;
	}
}

/* The kernel's count of 64 KiB anonymous folios allocated at fault. */
static unsigned long mthp_faults(void)
{
	char buf[32];

	if (knob_get(MTHP_DIR "hugepages-64kB/stats/anon_fault_alloc", buf,
		     sizeof(buf))) {
		perror("hugepages-64kB/stats/anon_fault_alloc");
		exit(1);
	}
	return strtoul(buf, NULL, 10);
}

/* Anonymous memory of @size bytes backed as @mem asks, not yet touched. */
static void *get_mem(size_t size, enum mem mem)
{
	int thp = mem != MEM_4K;
	size_t len = size + (thp ? THP_SIZE : 0);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *aligned;

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	if (!thp) {
		madvise(p, len, MADV_NOHUGEPAGE);
		return p;
	}
	aligned = (char *)(((uintptr_t)p + THP_SIZE - 1) & ~(THP_SIZE - 1));
	if (aligned > p)
		munmap(p, aligned - p);
	munmap(aligned + size, p + len - (aligned + size));
	if (mem == MEM_THP)
		madvise(aligned, size, MADV_HUGEPAGE);
	return aligned;
}

/*
 * Exit unless the range at @p is mapped by a THP (smaps' AnonHugePages
 * covers it): a fault-latency row timed on 4 KiB pages would be a lie.
 */
static void check_thp(void *p, size_t size)
{
	unsigned long start, end, kb;
	int in_vma = 0, ok = 0;
	char line[256];
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f) {
		perror("/proc/self/smaps");
		exit(1);
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			in_vma = start <= (uintptr_t)p && (uintptr_t)p < end;
			continue;
		}
		if (in_vma && sscanf(line, "AnonHugePages: %lu kB", &kb) == 1) {
			ok = (kb << 10) >= size;
			break;
		}
	}
	fclose(f);
	if (!ok) {
		fprintf(stderr, "fault-latency: buffer at %p is not THP-backed\n", p);
		exit(1);
	}
}

/* One CPU read of the byte at @p that the compiler may not drop or merge. */
static unsigned char cpu_read(const unsigned char *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/*
 * One command over the range, or exit; a MIGRATE_TO_DEV of 64 KiB folios
 * that the kernel refuses (ENOENT: some page could not move) returns
 * the error instead.
 */
static int dev(unsigned long req, void *addr, void *ptr, size_t size,
	       enum mem mem)
{
	struct hmm_dmirror_cmd cmd;
	int ret = dcmd(dev_fd, req, addr, ptr, size / page_size, &cmd);

	if (ret == -ENOENT && req == HMM_DMIRROR_MIGRATE_TO_DEV &&
	    mem == MEM_64K)
		return ret;
	if (ret) {
		fprintf(stderr, "ioctl %#lx: %s\n", req, strerror(-ret));
		exit(1);
	}
	if (cmd.cpages != cmd.npages && req != HMM_DMIRROR_MIGRATE_TO_SYS) {
		fprintf(stderr, "ioctl %#lx: %llu of %llu pages\n", req,
			(unsigned long long)cmd.cpages,
			(unsigned long long)cmd.npages);
		exit(1);
	}
	return 0;
}

/*
 * One timed repetition of @w over @size bytes; returns microseconds, or
 * -1 with mem_failed[@mem] set when the kernel cannot migrate @mem.
 */
static double run(const char *w, size_t size, enum mem mem)
{
	void *buf = get_mem(size, mem), *out = malloc(size);
	unsigned long folios = mem == MEM_64K ? mthp_faults() : 0;
	const unsigned char *cpu = buf;
	unsigned char sink = 0;
	double t = 0;
	size_t i;
	int ret = 0;

	if (!out) {
		perror("malloc");
		exit(1);
	}
	memset(out, 1, size);
	if (strcmp(w, "read-unpop"))
		pattern_fill(buf, size, 1);
	/* a 64k row timed on 4 KiB pages would be a lie */
	if (mem == MEM_64K && strcmp(w, "read-unpop") &&
	    mthp_faults() - folios < size / MTHP_SIZE) {
		fprintf(stderr, "%s: buffer at %p is not 64 KiB folios\n", w, buf);
		exit(1);
	}

	if (!strcmp(w, "migrate-sys")) {
		t = now_us();
		ret = dev(HMM_DMIRROR_MIGRATE_TO_DEV, buf, out, size, mem);
		if (!ret)
			dev(HMM_DMIRROR_MIGRATE_TO_SYS, buf, NULL, size, mem);
		t = now_us() - t;
	} else if (!strcmp(w, "migrate-fault")) {
		t = now_us();
		ret = dev(HMM_DMIRROR_MIGRATE_TO_DEV, buf, out, size, mem);
		for (i = 0; !ret && i < size; i += page_size)
			sink += cpu_read(cpu + i);
		t = now_us() - t;
	} else if (!strcmp(w, "fault-latency")) {
		check_thp(buf, size);
		dev(HMM_DMIRROR_MIGRATE_TO_DEV, buf, out, size, mem);
		t = now_us();
		sink += cpu_read(cpu + size / 2);
		for (i = 0; i < size; i += page_size)
			sink += cpu_read(cpu + i);
		t = now_us() - t;
		if (pattern_bad(buf, size, 1)) {
			fprintf(stderr, "fault-latency: data changed on the way back\n");
			exit(1);
		}
	} else if (!strcmp(w, "read-pop") || !strcmp(w, "read-unpop")) {
		t = now_us();
		dev(HMM_DMIRROR_READ, buf, out, size, mem);
		t = now_us() - t;
	} else if (!strcmp(w, "snapshot")) {
		t = now_us();
		dev(HMM_DMIRROR_SNAPSHOT, buf, out, size, mem);
		t = now_us() - t;
	} else if (!strcmp(w, "memcpy")) {
		t = now_us();
		memcpy(out, buf, size);
		t = now_us() - t;
	}
	/* Keep the reads: their sum goes where the compiler cannot see. */
	asm volatile("" : : "r" (sink));
	munmap(buf, size);
	free(out);
	if (ret) {
		mem_failed[mem] = ret;
		return -1;
	}
	return t;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * Small cells finish in well under a millisecond of guest time, where one
 * timer interrupt or TLB refill is a large share: time them several times
 * and report the median, so each reported repetition is equally stable.
 */
static double measure(const char *w, size_t size, enum mem mem)
{
	double t[16];
	int n = size >= (64UL << 20) ? 1 : (int)((64UL << 20) / size);
	int i;

	if (n > 16)
		n = 16;
	for (i = 0; i < n; i++) {
		t[i] = run(w, size, mem);
		if (t[i] < 0)
			return -1;
	}
	qsort(t, n, sizeof(*t), cmp_double);
	return t[n / 2];
}

static int check_clock(void)
{
	char cs[64] = "";
	FILE *f;
	int i;

	/* tsc-early gives way to tsc once the TSC is calibrated. */
	for (i = 0; i < 100; i++) {
		f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
		if (!f || !fgets(cs, sizeof(cs), f))
			return -1;
		fclose(f);
		cs[strcspn(cs, "\n")] = 0;
		if (!strcmp(cs, "tsc"))
			break;
		usleep(100000);
	}
	printf("BENCH-CLOCK %s\n", cs);
	if (strcmp(cs, "tsc") && strcmp(cs, "hpet") && strcmp(cs, "acpi_pm")) {
		fprintf(stderr, "clocksource %s is not fine-grained: refusing to measure\n", cs);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *sizes = "2,32,256", *wl = NULL, *mems = "4k,thp";
	char *list, *tok;
	enum mem mem;
	double us;
	size_t w;
	int opt;

	while ((opt = getopt(argc, argv, "s:w:m:")) != -1) {
		switch (opt) {
		case 's':
			sizes = optarg;
			break;
		case 'w':
			wl = optarg;
			break;
		case 'm':
			mems = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s [-s MiB,...] [-w workload,...] [-m 4k,thp,64k]\n",
				argv[0]);
			return 2;
		}
	}
	page_size = sysconf(_SC_PAGESIZE);
	if (check_clock())
		return 1;
	dev_fd = open("/dev/hmm_dmirror0", O_RDWR);
	if (dev_fd < 0) {
		perror("/dev/hmm_dmirror0");
		return 1;
	}
	atexit(mthp_restore);
	list = strdup(sizes);
	for (tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		size_t size = strtoul(tok, NULL, 0) << 20;

		for (mem = 0; mem < NR_MEM; mem++) {
			if (!selected(mems, mem_names[mem]))
				continue;
			if (mem == MEM_64K)
				mthp_on();
			for (w = 0; w < sizeof(workloads) / sizeof(*workloads); w++) {
				if (!selected(wl, workloads[w]) ||
				    !strcmp(workloads[w], "fault-latency"))
					continue;
				us = -1;
				if (!mem_failed[mem] ||
				    strncmp(workloads[w], "migrate-", 8))
					us = measure(workloads[w], size, mem);
				if (us < 0)
					printf("BENCH-NA %s %s %zu %s\n",
					       workloads[w], mem_names[mem],
					       size, strerror(-mem_failed[mem]));
				else
					printf("BENCH %s %s %zu %.1f\n",
					       workloads[w], mem_names[mem],
					       size, us);
				fflush(stdout);
			}
			mthp_restore();
		}
	}
	free(list);
	if (selected(wl, "fault-latency") && selected(mems, "thp")) {
		printf("BENCH fault-latency thp %lu %.1f\n", THP_SIZE,
		       measure("fault-latency", THP_SIZE, MEM_THP));
		fflush(stdout);
	}
	close(dev_fd);
	return 0;
}
