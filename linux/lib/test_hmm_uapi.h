/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * User-visible interface of the HMM test driver (lib/test_hmm.c).
 *
 * Each /dev/hmm_dmirrorN node plays one device. An open file is one device
 * context mirroring the calling process's address space. All commands take
 * a struct hmm_dmirror_cmd except HMM_DMIRROR_STATS.
 *
 * Commands 0x00 to 0x07 keep the numbers, layout and meaning they had in
 * Linux 6.12 so that programs built against that header run unchanged;
 * 0x08 is Linux 6.19's HMM_DMIRROR_FLAGS.
 */
#ifndef _LIB_TEST_HMM_UAPI_H
#define _LIB_TEST_HMM_UAPI_H

#include <linux/const.h>
#include <linux/types.h>
#include <linux/ioctl.h>

/**
 * struct hmm_dmirror_cmd - argument of the range commands
 * @addr: start of the user virtual range, page aligned
 * @ptr: user buffer of @npages pages (READ, WRITE, MIGRATE_TO_DEV,
 *	EXCLUSIVE) or of @npages bytes (SNAPSHOT, one HMM_DMIRROR_PROT_* byte
 *	per page); unused otherwise
 * @npages: number of pages in the range
 * @cpages: out: READ, WRITE, SNAPSHOT, EXCLUSIVE: pages done (all of them
 *	on success); MIGRATE_TO_DEV: pages in the device's memory once the
 *	migration is done, whether they moved now or earlier; MIGRATE_TO_SYS:
 *	pages moved back now; RELEASE: pages evicted
 * @faults: out: READ and WRITE: device faults taken, each filling the
 *	device's page table from the CPU's for the rest of the range (1 for a
 *	range the device had not seen, 0 for one it had); 0 for the others
 *
 * MIGRATE_TO_DEV fails with -ENOENT when some page of the range is not in
 * the device's memory afterwards: nothing could move it (a shared mapping,
 * a page in another device's memory, a pinned page).
 */
struct hmm_dmirror_cmd {
	__u64		addr;
	__u64		ptr;
	__u64		npages;
	__u64		cpages;
	__u64		faults;
};

/* Copy the range through the device mirror into / out of @ptr. */
#define HMM_DMIRROR_READ		_IOWR('H', 0x00, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_WRITE		_IOWR('H', 0x01, struct hmm_dmirror_cmd)
/* Move the range into this device's memory / back to system memory. */
#define HMM_DMIRROR_MIGRATE_TO_DEV	_IOWR('H', 0x02, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_MIGRATE_TO_SYS	_IOWR('H', 0x03, struct hmm_dmirror_cmd)
/* Describe each page of the range without faulting (one byte per page). */
#define HMM_DMIRROR_SNAPSHOT		_IOWR('H', 0x04, struct hmm_dmirror_cmd)
/* Take device-exclusive (atomic) access / check it is still held. */
#define HMM_DMIRROR_EXCLUSIVE		_IOWR('H', 0x05, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_CHECK_EXCLUSIVE	_IOWR('H', 0x06, struct hmm_dmirror_cmd)
/* Evict every page of this device's memory back to system memory. */
#define HMM_DMIRROR_RELEASE		_IOWR('H', 0x07, struct hmm_dmirror_cmd)
/*
 * Set this open file's behaviour flags (Linux 6.19's command): the flags
 * word is passed in npages, addr and ptr are not used.  Unknown bits are
 * -EINVAL and leave the flags unchanged.
 */
#define HMM_DMIRROR_FLAGS		_IOWR('H', 0x08, struct hmm_dmirror_cmd)

/*
 * The device's large allocations fail (device folios of any order on the
 * way in, large system folios on the way back), so migrations fall back
 * to order-0 pages and still move everything.
 */
#define HMM_DMIRROR_FLAG_FAIL_ALLOC		_BITULL(0)
/* Flags of this series, above the upstream ones. */
/* EXCLUSIVE takes each page with make_device_exclusive() (Linux 6.15). */
#define HMM_DMIRROR_FLAG_EXCLUSIVE_BY_PAGE	_BITULL(32)
/*
 * MIGRATE_TO_SYS first keeps this device's pages among the first 64 of
 * the range locked for 500 ms while they stay mapped, as a driver whose
 * copy engine is busy with them would, then migrates them.
 */
#define HMM_DMIRROR_FLAG_HOLD_LOCKED		_BITULL(33)
/*
 * This file's look-ups (SNAPSHOT, FOLIO_ORDERS) do not ask
 * hmm_range_fault() for the order of large folios mapped by PTEs
 * (HMM_PFN_REQ_FOLIO_ORDER), as a driver written for Linux 6.12 would not.
 */
#define HMM_DMIRROR_FLAG_NO_FOLIO_ORDER		_BITULL(34)
#define HMM_DMIRROR_FLAGS_ALL	(HMM_DMIRROR_FLAG_FAIL_ALLOC |		\
				 HMM_DMIRROR_FLAG_EXCLUSIVE_BY_PAGE |	\
				 HMM_DMIRROR_FLAG_HOLD_LOCKED |		\
				 HMM_DMIRROR_FLAG_NO_FOLIO_ORDER)

/* Folio orders HMM_DMIRROR_STATS counts (the last one takes any above). */
#define HMM_DMIRROR_STAT_ORDERS		10

/**
 * struct hmm_dmirror_stats - counters of one device (not of one open file)
 * @faults: CPU faults on this device's pages served by migrate_to_ram()
 * @to_device: pages migrated into this device's memory
 * @to_system: pages migrated out of it (by command, CPU fault or eviction)
 * @pages_in_use: device pages currently handed out to data
 * @pages_total: device pages the device has mapped with memremap_pages()
 * @evictions: eviction passes run (HMM_DMIRROR_RELEASE, module unload)
 * @folios_to_device: folios migrated into this device's memory, by order
 *	(order 0 for single pages; a large folio moved whole counts once, at
 *	its order; pages of a split folio count at order 0)
 * @folios_to_system: folios migrated out of it, by order
 *
 * Counters only grow, except @pages_in_use and @pages_total.
 */
struct hmm_dmirror_stats {
	__u64		faults;
	__u64		to_device;
	__u64		to_system;
	__u64		pages_in_use;
	__u64		pages_total;
	__u64		evictions;
	__u64		folios_to_device[HMM_DMIRROR_STAT_ORDERS];
	__u64		folios_to_system[HMM_DMIRROR_STAT_ORDERS];
};

/*
 * Read this device's counters; new in this series, numbered clear of the
 * commands upstream uses (0x00 to 0x09).
 */
#define HMM_DMIRROR_STATS		_IOR('H', 0x40, struct hmm_dmirror_stats)

/*
 * Like SNAPSHOT, without faulting, one byte per page into @ptr: the
 * mapping order hmm_range_fault() reports for the page (0 for a page
 * mapped on its own, 9 for a PMD on x86-64, 4 for a 64 KiB folio mapped
 * whole by PTEs), or HMM_DMIRROR_ORDER_NONE where it reports no page.
 */
#define HMM_DMIRROR_FOLIO_ORDERS	_IOWR('H', 0x41, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_ORDER_NONE		0xFF

/* Bytes HMM_DMIRROR_SNAPSHOT writes, one per page. */
enum {
	HMM_DMIRROR_PROT_ERROR			= 0xFF,
	HMM_DMIRROR_PROT_NONE			= 0x00,
	HMM_DMIRROR_PROT_READ			= 0x01,
	HMM_DMIRROR_PROT_WRITE			= 0x02,
	HMM_DMIRROR_PROT_PMD			= 0x04,
	HMM_DMIRROR_PROT_PUD			= 0x08,
	HMM_DMIRROR_PROT_ZERO			= 0x10,
	HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL	= 0x20,
	HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE	= 0x30,
	HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL	= 0x40,
	HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE	= 0x50,
};

/* Kind of memory behind a device; 0 is never a valid kind. */
enum {
	HMM_DMIRROR_MEMORY_DEVICE_PRIVATE = 1,
	HMM_DMIRROR_MEMORY_DEVICE_COHERENT,
};

#endif /* _LIB_TEST_HMM_UAPI_H */
