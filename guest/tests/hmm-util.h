/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers the guest test programs share: TAP output, a test pattern, the
 * device files, one dummy-driver command, the driver's per-device
 * counters, reloading the driver.
 */
#ifndef HMM_UTIL_H
#define HMM_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include <lib/test_hmm_uapi.h>

static int tap_n;

/* One TAP result line; returns @cond so a caller can fold it into a verdict. */
static inline int __attribute__((format(printf, 2, 3)))
tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

/* Word @i of a buffer filled with pattern @seed. */
static inline uint32_t pattern_word(uint32_t seed, size_t i)
{
	return seed * 0x9e3779b1u ^ (uint32_t)i * 0x85ebca6bu;
}

/* Fill @bytes (a multiple of 4) at @p with pattern @seed. */
static inline void pattern_fill(void *p, size_t bytes, uint32_t seed)
{
	uint32_t *w = p;
	size_t i;

	for (i = 0; i < bytes / 4; i++)
		w[i] = pattern_word(seed, i);
}

/* How many words of @bytes at @p differ from pattern @seed. */
static inline size_t pattern_bad(const void *p, size_t bytes, uint32_t seed)
{
	const uint32_t *w = p;
	size_t i, bad = 0;

	for (i = 0; i < bytes / 4; i++)
		bad += w[i] != pattern_word(seed, i);
	return bad;
}

/* Next value of the xorshift64* generator whose state is @s (never 0). */
static inline uint64_t xorshift64s(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* Open /dev/hmm_dmirror@d; -1 (errno set) on failure. */
/*
 * Read the first line of sysfs file @path into @buf (size @len): for a
 * knob such as "always [inherit] madvise never" the word in brackets.
 * 0, or -errno.
 */
static inline int knob_get(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	char line[256], *w = line, *c;
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	line[n] = 0;
	line[strcspn(line, "\n")] = 0;
	c = strchr(line, '[') ? strchr(line, ']') : NULL;
	if (c) {
		w = strchr(line, '[') + 1;
		*c = 0;
	}
	if (strlen(w) >= len)
		return -ENOSPC;
	strcpy(buf, w);
	return 0;
}

/* Write @word to sysfs file @path; 0, or -errno. */
static inline int knob_set(const char *path, const char *word)
{
	int fd = open(path, O_WRONLY), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, word, strlen(word)) != (ssize_t)strlen(word))
		ret = -errno;
	close(fd);
	return ret;
}

static inline int dev_open(int d)
{
	char path[32];

	snprintf(path, sizeof(path), "/dev/hmm_dmirror%d", d);
	return open(path, O_RDWR);
}

/* One HMM_DMIRROR_* command on @npages pages at @addr; 0 or -errno. */
static inline int dcmd(int fd, unsigned long req, void *addr, void *ptr,
		       size_t npages, struct hmm_dmirror_cmd *c)
{
	memset(c, 0, sizeof(*c));
	c->addr = (uintptr_t)addr;
	c->ptr = (uintptr_t)ptr;
	c->npages = npages;
	return ioctl(fd, req, c) ? -errno : 0;
}

/* The device's counters (HMM_DMIRROR_STATS); 0 or -errno. */
static inline int dev_stats(int fd, struct hmm_dmirror_stats *st)
{
	memset(st, 0, sizeof(*st));
	return ioctl(fd, HMM_DMIRROR_STATS, st) ? -errno : 0;
}

/*
 * Open the @n devices into @fds and read each one's counters into
 * @before; on failure say "Bail out!" (TAP) and return -1.
 */
static inline int dev_open_all(int *fds, struct hmm_dmirror_stats *before,
			       int n)
{
	int d;

	for (d = 0; d < n; d++) {
		fds[d] = dev_open(d);
		if (fds[d] < 0 || dev_stats(fds[d], &before[d])) {
			printf("Bail out! /dev/hmm_dmirror%d: %s\n", d,
			       strerror(errno));
			return -1;
		}
	}
	return 0;
}

/*
 * Read the counters into @after until pages_in_use is back to its value
 * in @before or about @tenths tenths of a second have passed: pages
 * freed by exiting processes reach the driver a little later.
 * Returns whether it is back.
 */
static inline int dev_settled(int fd, const struct hmm_dmirror_stats *before,
			      struct hmm_dmirror_stats *after, int tenths)
{
	while (!dev_stats(fd, after)) {
		if (after->pages_in_use == before->pages_in_use)
			return 1;
		if (tenths-- <= 0)
			break;
		usleep(100000);
	}
	return 0;
}

/*
 * Into @cmd: the shell command that loads test_hmm again as it is loaded
 * now, with the same coherent windows (read them before unloading it).
 * Returns 0, or -1 when the module's parameters cannot be read.
 */
static inline int hmm_load_cmd(char *cmd, size_t len)
{
	unsigned long addr[2];
	char path[64];
	FILE *f;
	int i, got;

	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path),
			 "/sys/module/test_hmm/parameters/spm_addr_dev%d", i);
		f = fopen(path, "r");
		if (!f)
			return -1;
		got = fscanf(f, "%lu", &addr[i]);
		fclose(f);
		if (got != 1)
			return -1;
	}
	snprintf(cmd, len, "modprobe test_hmm spm_addr_dev0=%#lx spm_addr_dev1=%#lx",
		 addr[0], addr[1]);
	return 0;
}

#endif /* HMM_UTIL_H */
