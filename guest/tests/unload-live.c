// SPDX-License-Identifier: GPL-2.0
/*
 * unload-live: unload test_hmm while this process still maps pages of
 * every device, then check that nothing was lost and that the module
 * loads and works again. TAP output.
 */
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

#define NPAGES	64

static long ps;

static int cmd(int fd, unsigned long req, void *addr, void *ptr,
	       struct hmm_dmirror_cmd *c)
{
	return dcmd(fd, req, addr, ptr, NPAGES, c);
}

static void fill(void *p, uint32_t seed)
{
	pattern_fill(p, NPAGES * ps, seed);
}

static int check(const void *p, uint32_t seed)
{
	return !pattern_bad(p, NPAGES * ps, seed);
}

static int on_device(int fd, void *buf, unsigned char want)
{
	unsigned char snap[NPAGES];
	struct hmm_dmirror_cmd c;
	int i;

	if (cmd(fd, HMM_DMIRROR_SNAPSHOT, buf, snap, &c))
		return 0;
	for (i = 0; i < NPAGES; i++)
		if ((snap[i] & 0xf0) != want)
			return 0;
	return 1;
}

int main(void)
{
	uint32_t *buf[4], *io;
	struct hmm_dmirror_cmd c;
	char load[128];
	int i, fd;

	ps = sysconf(_SC_PAGESIZE);
	printf("TAP version 13\n1..%d\n", 4 + 1 + 4 + 4);
	io = malloc(NPAGES * ps);
	for (i = 0; i < 4; i++) {
		unsigned char want = i < 2 ? HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL :
				     HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL;

		buf[i] = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		madvise(buf[i], NPAGES * ps, MADV_NOHUGEPAGE);
		fill(buf[i], 100 + i);
		fd = dev_open(i);
		tap_ok(fd >= 0 && !cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf[i], io, &c) &&
		       c.cpages == NPAGES && on_device(fd, buf[i], want),
		       "migrated to a device before unload");
		close(fd);
	}
	tap_ok(!hmm_load_cmd(load, sizeof(load)) && system("rmmod test_hmm") == 0,
	       "rmmod with device pages mapped");
	for (i = 0; i < 4; i++)
		tap_ok(check(buf[i], 100 + i), "data intact after unload");
	tap_ok(system(load) == 0, "module reloads");
	for (i = 0; i < 3; i++) {
		fd = dev_open(i);
		tap_ok(fd >= 0 && !cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf[i], io, &c) &&
		       c.cpages == NPAGES && check(io, 100 + i) &&
		       !cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf[i], NULL, &c) &&
		       check(buf[i], 100 + i), "device works after reload");
		close(fd);
	}
	free(io);
	return 0;
}
