// SPDX-License-Identifier: GPL-2.0
/*
 * hmm-fuzz: a bounded, seeded, reproducible run of random dummy-driver
 * ioctls with random arguments, next to the table-driven bad_* cases of
 * hmm-tests. Each call draws
 *   - a device (one of the four) and a command: one of the nine
 *     HMM_DMIRROR_* commands, or a random number in or outside the 'H'
 *     ioctl space;
 *   - the ioctl argument: the address of a command block, or NULL, a kernel
 *     address, an unmapped address, a misaligned one;
 *   - in the block, addr and ptr from a pool of interesting values (page
 *     offsets into a scratch buffer, its read-only or PROT_NONE neighbours,
 *     a hole, NULL, kernel and non-canonical addresses, misaligned and
 *     random ones) and npages from small, edge and huge counts.
 * A call must return 0 or fail with an errno the driver documents
 * (EINVAL, EFAULT, ENOMEM, EBUSY, EPERM, ENOENT, ENOSPC, ENOTTY); any other
 * result fails the run. Afterwards:
 *   - a sentinel buffer never handed to the driver still holds its data,
 *     and so does a read-only buffer the calls did target (through any
 *     device write or migration): nothing wrote where it must not;
 *   - every device still migrates and reads a fresh buffer correctly;
 *   - once the buffers are unmapped every device's pages_in_use is back
 *     to its value before the run.
 * Kernel reports and kmemleak are the harness's to judge.
 *
 * Usage: hmm-fuzz [-s SEED] [-n CALLS]   (defaults: seed 1, 2000 calls)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "hmm-util.h"

#define NDEV		4
#define SCRATCH_PAGES	64
#define RO_PAGES	16
#define SENTINEL_PAGES	16
#define IO_PAGES	128

static long ps;
static uint64_t rng;

static uint64_t rnd(void)
{
	return xorshift64s(&rng);
}

static uint64_t pick(const uint64_t *v, size_t n)
{
	return v[rnd() % n];
}


static const unsigned long cmds[] = {
	HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV,
	HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT,
	HMM_DMIRROR_EXCLUSIVE, HMM_DMIRROR_CHECK_EXCLUSIVE,
	HMM_DMIRROR_RELEASE, HMM_DMIRROR_STATS,
};
#define NR_CMDS	(sizeof(cmds) / sizeof(cmds[0]))

/* The errors the driver documents; anything else is a failure. */
static const int allowed[] = {
	EINVAL, EFAULT, ENOMEM, EBUSY, EPERM, ENOENT, ENOSPC, ENOTTY,
};
#define NR_ALLOWED	(sizeof(allowed) / sizeof(allowed[0]))

struct area {
	char *scratch;		/* RW, the calls may do anything to it */
	char *ro;		/* read-only, pattern 2: must stay intact */
	char *none;		/* PROT_NONE */
	char *hole;		/* unmapped */
	char *io;		/* RW, for ptr */
};

static uint64_t random_addr(const struct area *a)
{
	const uint64_t fixed[] = {
		0, 1, 4095, 4096, 0x7ffffffff000ull, 0x800000000000ull,
		0xffff800000000000ull, 0xffffffffff600000ull, ~0ull,
		~0ull - 4095, 0x8000000000000000ull,
	};
	char *const base[] = {
		a->ro, a->none, a->hole, a->io, a->scratch, a->scratch,
	};
	unsigned int r = rnd() % 8;

	if (r == 0)
		return pick(fixed, sizeof(fixed) / sizeof(fixed[0]));
	if (r == 1)
		return rnd();
	return (uintptr_t)base[r - 2] + rnd() % SCRATCH_PAGES * ps +
	       (rnd() % 8 ? 0 : rnd() % ps);
}

static uint64_t random_npages(void)
{
	const uint64_t edge[] = {
		0, 1, 2, 63, 64, 65, 512, 1ull << 20, 1ull << 32,
		1ull << 52, ~0ull >> 12, ~0ull,
	};

	return rnd() % 3 ? 1 + rnd() % 80 :
	       pick(edge, sizeof(edge) / sizeof(edge[0]));
}

static unsigned long random_cmd(void)
{
	unsigned long nr = rnd() % 32, size = rnd() % 4 ? 40 : rnd() % 256;

	switch (rnd() % 8) {
	case 0:
		return _IOC(rnd() % 4, 'H', nr, size);
	case 1:
		return rnd() & 0xffffffff;
	default:
		return cmds[rnd() % NR_CMDS];
	}
}

static void *random_arg(struct hmm_dmirror_cmd *c, const struct area *a)
{
	switch (rnd() % 16) {
	case 0:
		return NULL;
	case 1:
		return (void *)0xffff888000000000ull;
	case 2:
		return a->hole;
	case 3:
		return a->none;
	case 4:
		return (char *)c + 1 + rnd() % 7;	/* inside the room */
	case 5:
		return a->ro;		/* the block is read-only: copy-out fails */
	default:
		return c;
	}
}

/* A fresh buffer goes to device @fd and back with its data intact. */
static int device_works(int fd, char *io)
{
	struct hmm_dmirror_cmd c;
	size_t n = 16;
	char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int ok;

	if (p == MAP_FAILED)
		return 0;
	pattern_fill(p, n * ps, 77);
	ok = !dcmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, p, io, n, &c) &&
	     c.cpages == n && !pattern_bad(io, n * ps, 77) &&
	     !dcmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, p, NULL, n, &c) &&
	     !pattern_bad(p, n * ps, 77);
	munmap(p, n * ps);
	return ok;
}

/*
 * All buffers live in one reserved PROT_NONE region, in this order with
 * wide guards between them, so that a call running off the end of one
 * buffer (a device write or a copy-out over npages) meets a guard, never
 * the next buffer; the sentinel comes first, above a guard of its own.
 */
#define RESERVE_PAGES	2048
static char *reserve;

static char *map(size_t at, size_t pages, int prot)
{
	char *p = mmap(reserve + at * ps, pages * ps, prot,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int main(int argc, char **argv)
{
	struct hmm_dmirror_stats before[NDEV], after[NDEV];
	unsigned long calls = 2000, done = 0, okays = 0, bad = 0, i;
	unsigned long errs[NR_ALLOWED] = { 0 };
	uint64_t seed = 1;
	struct area a;
	char *sentinel;
	int fds[NDEV], opt, d, all_back = 1, works = 1;

	while ((opt = getopt(argc, argv, "s:n:")) != -1) {
		if (opt == 's')
			seed = strtoull(optarg, NULL, 0);
		else if (opt == 'n')
			calls = strtoul(optarg, NULL, 0);
		else
			return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	ps = sysconf(_SC_PAGESIZE);
	rng = seed * 0x9e3779b97f4a7c15ull | 1;
	printf("TAP version 13\n1..5\n# hmm-fuzz: seed %llu, %lu calls\n",
	       (unsigned long long)seed, calls);

	if (dev_open_all(fds, before, NDEV))
		return 1;
	reserve = mmap(NULL, RESERVE_PAGES * ps, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (reserve == MAP_FAILED) {
		printf("Bail out! mmap: %s\n", strerror(errno));
		return 1;
	}
	sentinel = map(64, SENTINEL_PAGES, PROT_READ | PROT_WRITE);
	a.scratch = map(320, SCRATCH_PAGES, PROT_READ | PROT_WRITE);
	a.ro = map(576, RO_PAGES, PROT_READ | PROT_WRITE);
	a.none = reserve + 832 * ps;
	a.hole = reserve + 1088 * ps;
	a.io = map(1344, IO_PAGES, PROT_READ | PROT_WRITE);
	if (!sentinel || !a.scratch || !a.ro || !a.io) {
		printf("Bail out! mmap: %s\n", strerror(errno));
		return 1;
	}
	munmap(a.hole, SCRATCH_PAGES * ps);
	pattern_fill(sentinel, SENTINEL_PAGES * ps, 1);
	pattern_fill(a.ro, RO_PAGES * ps, 2);
	pattern_fill(a.scratch, SCRATCH_PAGES * ps, 3);
	mprotect(a.ro, RO_PAGES * ps, PROT_READ);

	for (i = 0; i < calls; i++) {
		/* Room for whatever size a random command encodes. */
		static union {
			struct hmm_dmirror_cmd c;
			char room[4096];
		} blk;
		struct hmm_dmirror_cmd *c = &blk.c;
		unsigned long req = random_cmd();
		int fd = fds[rnd() % NDEV], ret, k;

		memset(&blk, 0, sizeof(blk));
		c->addr = random_addr(&a);
		c->ptr = random_addr(&a);
		c->npages = random_npages();
		c->cpages = rnd() % 4 ? 0 : rnd();
		c->faults = rnd() % 4 ? 0 : rnd();
		ret = ioctl(fd, req, random_arg(c, &a));
		done++;
		if (!ret) {
			okays++;
			continue;
		}
		for (k = 0; k < (int)NR_ALLOWED; k++)
			if (errno == allowed[k])
				break;
		if (ret == -1 && k < (int)NR_ALLOWED) {
			errs[k]++;
			continue;
		}
		if (bad++ < 10)
			printf("# call %lu: cmd %#lx addr %#llx ptr %#llx npages %#llx: returned %d, %s\n",
			       i, req, (unsigned long long)c->addr,
			       (unsigned long long)c->ptr,
			       (unsigned long long)c->npages, ret,
			       strerror(errno));
	}
	printf("# %lu calls: %lu succeeded", done, okays);
	for (i = 0; i < NR_ALLOWED; i++)
		printf(", %lu %s", errs[i], strerrorname_np(allowed[i]));
	printf(", %lu other\n", bad);
	tap_ok(!bad, "every call returned 0 or a documented errno");
	tap_ok(!pattern_bad(sentinel, SENTINEL_PAGES * ps, 1) &&
	       !pattern_bad(a.ro, RO_PAGES * ps, 2),
	       "memory outside the calls' reach, and read-only memory, intact");

	for (d = 0; d < NDEV; d++)
		works &= device_works(fds[d], a.io);
	tap_ok(works, "every device still migrates and reads correctly");

	munmap(reserve, RESERVE_PAGES * ps);
	for (d = 0; d < NDEV; d++) {
		int back = dev_settled(fds[d], &before[d], &after[d], 50);

		if (!back)
			printf("# dev%d: pages_in_use %llu -> %llu\n", d,
			       (unsigned long long)before[d].pages_in_use,
			       (unsigned long long)after[d].pages_in_use);
		all_back &= back;
	}
	tap_ok(all_back, "every device's pages_in_use back to its value before the run");
	tap_ok(1, "the kernel survived %lu random calls (seed %llu)", done,
	       (unsigned long long)seed);
	return bad || !works || !all_back;
}
