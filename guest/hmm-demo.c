// SPDX-License-Identifier: GPL-2.0
/*
 * hmm-demo: what `make run` shows. One buffer goes through the life a GPU
 * driver gives process memory: the device mirrors it, the data moves into
 * device memory, and the CPU touching it brings it back. Each step prints
 * what happened, how long it took, and how the hmm_* counters of
 * /proc/vmstat moved meanwhile (Documentation/mm/hmm.rst, "Watching HMM").
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

#define NPAGES	4096UL		/* 16 MiB of 4 KiB pages */

static long page_size;

/* The hmm_* counters of /proc/vmstat. */
#define MAX_COUNTERS	32

struct counters {
	int n;
	char name[MAX_COUNTERS][64];
	unsigned long long val[MAX_COUNTERS];
};

static struct counters before;

static void counters_read(struct counters *c)
{
	unsigned long long val;
	char name[64];
	FILE *f = fopen("/proc/vmstat", "r");

	c->n = 0;
	if (!f)
		return;
	while (c->n < MAX_COUNTERS && fscanf(f, "%63s %llu", name, &val) == 2) {
		if (strncmp(name, "hmm_", 4))
			continue;
		snprintf(c->name[c->n], sizeof(c->name[0]), "%s", name);
		c->val[c->n++] = val;
	}
	fclose(f);
}

/* Print the counters that moved since the last call, then start again. */
static void show_counters(void)
{
	struct counters now;
	int i, shown = 0;

	counters_read(&now);
	if (!now.n)
		return;
	for (i = 0; i < now.n && i < before.n; i++) {
		if (now.val[i] == before.val[i])
			continue;
		printf("%s %s +%llu", shown++ ? "," : "    /proc/vmstat:",
		       now.name[i], now.val[i] - before.val[i]);
	}
	printf("%s\n", shown ? "" : "    /proc/vmstat: no hmm_* counter moved");
	before = now;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Count the pages of the range that SNAPSHOT reports with each state. */
static void show_snapshot(int fd, void *buf, const char *when)
{
	unsigned char *prot = malloc(NPAGES);
	struct hmm_dmirror_cmd cmd;
	unsigned long sys = 0, local = 0, other = 0, i;

	if (!prot || dcmd(fd, HMM_DMIRROR_SNAPSHOT, buf, prot, NPAGES, &cmd)) {
		printf("    snapshot failed\n");
		free(prot);
		return;
	}
	for (i = 0; i < NPAGES; i++) {
		switch (prot[i] & 0xf0) {
		case HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL:
		case HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL:
			local++;
			break;
		case 0:
			sys++;
			break;
		default:
			other++;
		}
	}
	printf("    snapshot %s: %lu pages in system memory, %lu in this device's memory, %lu other\n",
	       when, sys, local, other);
	free(prot);
	/* the snapshot's own hmm_range_fault() calls belong to no step */
	counters_read(&before);
}

static void show_stats(int fd)
{
	struct hmm_dmirror_stats st;

	if (dev_stats(fd, &st))
		return;
	printf("    device counters: %llu faults served, %llu pages to device, %llu to system, %llu in use\n",
	       (unsigned long long)st.faults, (unsigned long long)st.to_device,
	       (unsigned long long)st.to_system,
	       (unsigned long long)st.pages_in_use);
}

/* One migration step of the demo: run it, say how it went, show counters. */
static int migrate_step(int fd, unsigned long req, void *buf, void *mirror,
			const char *what)
{
	struct hmm_dmirror_cmd cmd;
	double t = now_us();
	int ret = dcmd(fd, req, buf, mirror, NPAGES, &cmd);

	printf("%s: %s, %llu pages moved, %.0f us\n", what,
	       ret ? strerror(-ret) : "ok", (unsigned long long)cmd.cpages,
	       now_us() - t);
	show_counters();
	return ret != 0;
}

static int demo(const char *path, int coherent)
{
	size_t size = NPAGES * page_size;
	struct hmm_dmirror_cmd cmd;
	unsigned long i, bad = 0;
	uint32_t *buf, *mirror;
	int fd, ret, failed = 0;
	double t;

	printf("== %s\n", path);
	fd = open(path, O_RDWR);
	if (fd < 0) {
		printf("    cannot open: %s\n", strerror(errno));
		return 1;
	}
	buf = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mirror = malloc(size);
	if (buf == MAP_FAILED || !mirror)
		return 1;

	t = now_us();
	for (i = 0; i < size / sizeof(*buf); i++)
		buf[i] = i * 2654435761u;
	printf("1. CPU fills a %zu MiB buffer: %.0f us\n", size >> 20, now_us() - t);
	counters_read(&before);

	t = now_us();
	failed |= ret = dcmd(fd, HMM_DMIRROR_READ, buf, mirror, NPAGES, &cmd);
	for (i = 0; !ret && i < size / sizeof(*buf); i++)
		bad += mirror[i] != (uint32_t)(i * 2654435761u);
	printf("2. device reads it through its mirror (hmm_range_fault): %s, %llu pages, %lu mismatches, %.0f us\n",
	       ret ? strerror(-ret) : "ok", (unsigned long long)cmd.cpages, bad,
	       now_us() - t);
	show_counters();

	failed |= migrate_step(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, mirror,
			       "3. migrate to device memory (migrate_vma_*)");
	show_snapshot(fd, buf, "after migration");

	t = now_us();
	bad = 0;
	for (i = 0; i < size / sizeof(*buf); i++)
		bad += buf[i] != (uint32_t)(i * 2654435761u);
	printf("4. CPU reads every page (%s): %lu mismatches, %.0f us\n",
	       coherent ? "coherent memory: read in place, no fault" :
	       "each fault migrates a page back", bad, now_us() - t);
	show_counters();
	show_snapshot(fd, buf, "after CPU access");
	if (coherent) {
		failed |= migrate_step(fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf, NULL,
				       "5. migrate back to system memory");
		show_snapshot(fd, buf, "after migrating back");
	}
	show_stats(fd);

	munmap(buf, size);
	free(mirror);
	close(fd);
	return failed || bad;
}

int main(void)
{
	int ret;

	page_size = sysconf(_SC_PAGESIZE);
	printf("HMM demo: a buffer mirrored by a device, moved into its memory, and back\n");
	ret = demo("/dev/hmm_dmirror0", 0);
	if (access("/dev/hmm_dmirror2", F_OK) == 0)
		ret |= demo("/dev/hmm_dmirror2", 1);
	printf("demo %s\n", ret ? "FAILED" : "done");
	return ret;
}
