// SPDX-License-Identifier: GPL-2.0
/*
 * A make-believe device for exercising HMM from userspace.
 *
 * The module creates up to four character devices, /dev/hmm_dmirror0..3.
 * Each one plays a device with its own page table and its own memory:
 * units 0 and 1 keep migrated data in DEVICE_PRIVATE memory (struct pages
 * with no CPU mapping, the data held for them in ordinary pages the driver
 * allocates), units 2 and 3 in DEVICE_COHERENT memory carved out of two
 * physical windows given as module parameters (real RAM the CPU may map
 * directly).  Without both parameters only units 0 and 1 exist.
 *
 * Every unit is its own device: it has its own pgmap owner, so its peer
 * (0 for 1, 2 for 3) sees its pages as "remote" ones.
 *
 * The ABI is lib/test_hmm_uapi.h; tools/testing/selftests/mm/hmm-tests.c
 * is the specification of the behaviour.
 *
 * The file is laid out by concept:
 *
 *   Devices           a unit, its counters and its kind
 *   Device memory     chunks mapped with memremap_pages(), the pool of free
 *                     device pages, page_free()
 *   The mirror        the per-open-file device page table and the
 *                     mmu_interval_notifier keeping it honest
 *   Faulting          filling the mirror with hmm_range_fault()
 *   Data commands     READ and WRITE through the mirror
 *   Migration         to and from device memory, CPU faults on device
 *                     pages (migrate_to_ram()), eviction of a whole unit
 *   Snapshot          describing pages without faulting them
 *   Exclusive access  make_device_exclusive{,_range}() and its check
 *   File operations   open, release, mmap, the ioctl dispatcher
 *   Module            parameters, load and unload
 *
 * Locking, from the outside in: mmap_lock of the mirrored mm, then the
 * mirror's mutex.  The mutex is also taken by the invalidation callback,
 * which the core mm may call from reclaim, so nothing that could enter
 * reclaim is done under it (mirror entries are stored with GFP_ATOMIC) and
 * no user memory is touched under it (data goes through a kernel bounce
 * buffer).  A unit's chunk mutex is never taken under mmap_lock: the pool
 * is grown before a migration starts.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cdev.h>
#include <linux/delay.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/ioport.h>
#include <linux/kernel.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pagemap.h>
#include <linux/rmap.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/xarray.h>

#include "test_hmm_uapi.h"

#define DMIRROR_NR_UNITS	4
#define DMIRROR_NR_PRIVATE	2

/* Pages handled per step of every range command. */
#define DMIRROR_BATCH		64UL
/*
 * Pages per step of a migration: a huge page, so that a naturally aligned
 * THP fits in one step and moves as one folio.
 */
#define DMIRROR_MIGRATE_BATCH	(PMD_SIZE >> PAGE_SHIFT)
#define DMIRROR_LARGE_ORDER	(PMD_SHIFT - PAGE_SHIFT)
/*
 * The smallest large anonymous folio (order 2: the kernel makes no
 * anonymous folio of order 1), below which a range needs no large chunk.
 */
#define DMIRROR_MIN_LARGE_PAGES	4UL

/* Device memory is mapped in chunks of this size, on demand. */
#define DMIRROR_CHUNK_SIZE	SZ_64M
#define DMIRROR_CHUNK_PAGES	(DMIRROR_CHUNK_SIZE >> PAGE_SHIFT)
/* A private unit owns at most 1 GiB; a coherent one its 256 MiB window. */
#define DMIRROR_PRIVATE_CHUNKS	16
#define DMIRROR_WINDOW_SIZE	SZ_256M
#define DMIRROR_WINDOW_CHUNKS	(DMIRROR_WINDOW_SIZE / DMIRROR_CHUNK_SIZE)
#define DMIRROR_MAX_CHUNKS	DMIRROR_PRIVATE_CHUNKS

/* HMM_DMIRROR_FLAG_HOLD_LOCKED: how long selected pages stay locked. */
#define DMIRROR_HOLD_MS		500

/* How often a command goes back to the CPU page tables before EBUSY. */
#define DMIRROR_MAX_TRIES	16

/* End of the batch starting at @addr of a range ending at @end. */
static unsigned long dmirror_batch_end(unsigned long addr, unsigned long end)
{
	return addr + min(end - addr, DMIRROR_BATCH << PAGE_SHIFT);
}

/* End of the migration step at @addr: the next PMD boundary, or @end. */
static unsigned long dmirror_migrate_end(unsigned long addr, unsigned long end)
{
	return min(end, ALIGN_DOWN(addr, PMD_SIZE) + PMD_SIZE);
}

/* ------------------------------------------------------------------ */
/* Devices                                                             */
/* ------------------------------------------------------------------ */

struct dmirror_chunk;

/*
 * One unit. The structure is also the pgmap owner of its memory, which is
 * how a page is traced back to the unit that holds it.
 */
struct dmirror_device {
	struct device		dev;
	struct cdev		cdev;
	unsigned int		kind;		/* HMM_DMIRROR_MEMORY_* */
	phys_addr_t		window;		/* coherent units only */

	/* Chunks are only added while loaded, and removed at unload. */
	struct mutex		chunk_lock;
	struct dmirror_chunk	*chunks[DMIRROR_MAX_CHUNKS];
	unsigned int		nr_chunks;
	unsigned int		max_chunks;

	/*
	 * Free device pages, chained through page->zone_device_data, and
	 * (private units) the chunks that hand out large folios, of every
	 * order up to DMIRROR_LARGE_ORDER (see dmirror_large_take()), with
	 * the number of pages free in them.  A chunk gives its memory to one
	 * pool or the other, for good.  All under pool_lock.
	 */
	spinlock_t		pool_lock;
	struct page		*pool;
	unsigned long		pool_free;
	struct dmirror_chunk	*large[DMIRROR_MAX_CHUNKS];
	unsigned int		nr_large;
	unsigned long		large_free;

	atomic64_t		faults;
	atomic64_t		to_device;
	atomic64_t		to_system;
	atomic64_t		pages_in_use;
	atomic64_t		pages_total;
	atomic64_t		evictions;
	/* HMM_DMIRROR_FLAG_FAIL_ALLOC, last set by any open file */
	bool			fail_alloc;
	atomic64_t		folios_to_device[HMM_DMIRROR_STAT_ORDERS];
	atomic64_t		folios_to_system[HMM_DMIRROR_STAT_ORDERS];
};

static dev_t dmirror_devt;
static struct dmirror_device *dmirror_units[DMIRROR_NR_UNITS];

static bool dmirror_is_private(const struct dmirror_device *mdevice)
{
	return mdevice->kind == HMM_DMIRROR_MEMORY_DEVICE_PRIVATE;
}

static struct dmirror_device *dmirror_page_unit(struct page *page)
{
	return page_pgmap(page)->owner;
}

/*
 * The memory that holds a device page's data: for a private page the
 * system page the driver keeps for it, for any other page the page itself.
 */
static struct page *dmirror_data_page(struct page *page)
{
	struct folio *folio = page_folio(page);
	struct page *store;

	if (!is_device_private_page(page))
		return page;
	/* a large folio's store is as many pages, in order */
	store = folio_zone_device_data(folio);
	return store + folio_page_idx(folio, page);
}

/* Count a folio of @order that moved, into the device or out of it. */
static void dmirror_count_folio(struct dmirror_device *mdevice,
				unsigned int order, bool to_device)
{
	order = min_t(unsigned int, order, HMM_DMIRROR_STAT_ORDERS - 1);
	atomic64_inc(to_device ? &mdevice->folios_to_device[order] :
				 &mdevice->folios_to_system[order]);
}

/* ------------------------------------------------------------------ */
/* Device memory                                                       */
/* ------------------------------------------------------------------ */

/*
 * A chunk of a private unit that hands out large folios keeps its free
 * memory as a buddy system: free[k] has one bit per naturally aligned
 * block of 2^k pages of the chunk, set when the block is free as a whole
 * and not part of a larger free block.  A folio of order k is the first
 * free block of order k, or of the smallest order above it, halved down
 * to k (the halves not taken become free blocks); a freed folio merges
 * with its buddy as long as the buddy is free too, so the chunk's 2 MiB
 * blocks come back once all their pieces are free.  Bitmaps rather than
 * lists: freeing a folio needs no allocation and finds its buddy in one
 * test, and the lowest free block, handed out first, keeps the chunk's
 * front busy and its end whole.
 */
struct dmirror_chunk {
	struct dev_pagemap	pgmap;
	struct resource		*res;		/* private chunks only */
	unsigned long		*free[DMIRROR_LARGE_ORDER + 1];
};

static struct dmirror_chunk *dmirror_page_chunk(struct page *page)
{
	return container_of(page_pgmap(page), struct dmirror_chunk, pgmap);
}

/* Blocks of @order in a chunk, and the first pfn of @chunk. */
#define DMIRROR_BLOCKS(order)	(DMIRROR_CHUNK_PAGES >> (order))

static unsigned long dmirror_chunk_pfn(const struct dmirror_chunk *chunk)
{
	return PHYS_PFN(chunk->pgmap.range.start);
}

static void dmirror_chunk_free_maps(struct dmirror_chunk *chunk)
{
	unsigned int k;

	for (k = 0; k <= DMIRROR_LARGE_ORDER; k++)
		bitmap_free(chunk->free[k]);
}

/* Give @chunk a buddy system, all of it free; false if out of memory. */
static bool dmirror_chunk_init_maps(struct dmirror_chunk *chunk)
{
	unsigned int k;

	for (k = 0; k <= DMIRROR_LARGE_ORDER; k++) {
		chunk->free[k] = bitmap_zalloc(DMIRROR_BLOCKS(k), GFP_KERNEL);
		if (!chunk->free[k]) {
			dmirror_chunk_free_maps(chunk);
			return false;
		}
	}
	bitmap_fill(chunk->free[DMIRROR_LARGE_ORDER],
		    DMIRROR_BLOCKS(DMIRROR_LARGE_ORDER));
	return true;
}

/*
 * Take a free block of @order from @chunk, the first free block of order
 * @k (@k >= @order) halved down to @order.  Returns the pfn of its first
 * page, or 0 if @chunk has no free block of order @k.  pool_lock is held.
 */
static unsigned long dmirror_buddy_take(struct dmirror_chunk *chunk,
					unsigned int order, unsigned int k)
{
	unsigned long bit = find_first_bit(chunk->free[k], DMIRROR_BLOCKS(k));

	if (bit >= DMIRROR_BLOCKS(k))
		return 0;
	__clear_bit(bit, chunk->free[k]);
	/* keep the lower half each time; the upper one is free */
	while (k > order) {
		k--;
		bit <<= 1;
		__set_bit(bit + 1, chunk->free[k]);
	}
	return dmirror_chunk_pfn(chunk) + (bit << order);
}

/* Give back the block of @order at @pfn of @chunk.  pool_lock is held. */
static void dmirror_buddy_put(struct dmirror_chunk *chunk, unsigned long pfn,
			      unsigned int order)
{
	unsigned long bit = (pfn - dmirror_chunk_pfn(chunk)) >> order;

	while (order < DMIRROR_LARGE_ORDER &&
	       __test_and_clear_bit(bit ^ 1, chunk->free[order])) {
		bit >>= 1;
		order++;
	}
	__set_bit(bit, chunk->free[order]);
}

static const struct dev_pagemap_ops dmirror_pagemap_ops;

/*
 * Give back a free folio of @order at @page: to its chunk's buddy system
 * if its chunk has one, to the list of free pages if not.
 */
static void dmirror_pool_push(struct dmirror_device *mdevice,
			      struct page *page, unsigned int order)
{
	struct dmirror_chunk *chunk = dmirror_page_chunk(page);
	unsigned long flags;

	spin_lock_irqsave(&mdevice->pool_lock, flags);
	if (chunk->free[0]) {
		dmirror_buddy_put(chunk, page_to_pfn(page), order);
		mdevice->large_free += 1UL << order;
	} else {
		page->zone_device_data = mdevice->pool;
		mdevice->pool = page;
		mdevice->pool_free++;
	}
	spin_unlock_irqrestore(&mdevice->pool_lock, flags);
}

/*
 * Take a free folio's first page: a page of the list for order 0, else a
 * block of @order from the chunks with a buddy system, the smallest
 * order that has one first, so that splitting a 2 MiB block is the last
 * resort.  NULL if there is none.
 */
static struct page *dmirror_pool_pop(struct dmirror_device *mdevice,
				     unsigned int order)
{
	unsigned long flags, pfn = 0;
	struct page *page = NULL;
	unsigned int k, i;

	spin_lock_irqsave(&mdevice->pool_lock, flags);
	if (!order) {
		page = mdevice->pool;
		if (page) {
			mdevice->pool = page->zone_device_data;
			page->zone_device_data = NULL;
			mdevice->pool_free--;
		}
	} else if (mdevice->large_free >= 1UL << order) {
		for (k = order; !pfn && k <= DMIRROR_LARGE_ORDER; k++)
			for (i = 0; !pfn && i < mdevice->nr_large; i++)
				pfn = dmirror_buddy_take(mdevice->large[i],
							 order, k);
		if (pfn) {
			page = pfn_to_page(pfn);
			mdevice->large_free -= 1UL << order;
		}
	}
	spin_unlock_irqrestore(&mdevice->pool_lock, flags);
	return page;
}

/*
 * Map one more chunk of device memory and put its pages in the pool.
 * Private memory takes an unused piece of the physical address space;
 * coherent memory takes the next piece of the unit's window.
 */
static int dmirror_chunk_add(struct dmirror_device *mdevice, bool large)
{
	struct dmirror_chunk *chunk;
	unsigned long pfn, first;
	void *ret;

	lockdep_assert_held(&mdevice->chunk_lock);
	if (mdevice->nr_chunks >= mdevice->max_chunks)
		return -ENOSPC;

	chunk = kzalloc(sizeof(*chunk), GFP_KERNEL);
	if (!chunk)
		return -ENOMEM;
	if (large && !dmirror_chunk_init_maps(chunk)) {
		kfree(chunk);
		return -ENOMEM;
	}

	if (dmirror_is_private(mdevice)) {
		chunk->res = request_free_mem_region(&iomem_resource,
						     DMIRROR_CHUNK_SIZE,
						     "hmm_dmirror");
		if (IS_ERR(chunk->res)) {
			int err = PTR_ERR(chunk->res);

			dmirror_chunk_free_maps(chunk);
			kfree(chunk);
			return err;
		}
		chunk->pgmap.type = MEMORY_DEVICE_PRIVATE;
		chunk->pgmap.range.start = chunk->res->start;
		chunk->pgmap.range.end = chunk->res->end;
	} else {
		chunk->pgmap.type = MEMORY_DEVICE_COHERENT;
		chunk->pgmap.range.start = mdevice->window +
			(phys_addr_t)mdevice->nr_chunks * DMIRROR_CHUNK_SIZE;
		chunk->pgmap.range.end = chunk->pgmap.range.start +
			DMIRROR_CHUNK_SIZE - 1;
	}
	chunk->pgmap.nr_range = 1;
	chunk->pgmap.ops = &dmirror_pagemap_ops;
	chunk->pgmap.owner = mdevice;

	ret = memremap_pages(&chunk->pgmap, numa_node_id());
	if (IS_ERR(ret)) {
		if (chunk->res)
			release_mem_region(chunk->res->start,
					   resource_size(chunk->res));
		dmirror_chunk_free_maps(chunk);
		kfree(chunk);
		return PTR_ERR(ret);
	}

	/*
	 * A large chunk is born free (its bitmaps say so).  Private chunks
	 * start at a multiple of their size, so the folios carved from them
	 * are naturally aligned in pfns as well.  Pages of a small chunk are
	 * pushed from the top so that they are handed out in pfn order.
	 */
	if (large) {
		spin_lock_irq(&mdevice->pool_lock);
		mdevice->large[mdevice->nr_large++] = chunk;
		mdevice->large_free += DMIRROR_CHUNK_PAGES;
		spin_unlock_irq(&mdevice->pool_lock);
	} else {
		first = dmirror_chunk_pfn(chunk);
		for (pfn = first + DMIRROR_CHUNK_PAGES; pfn-- > first;)
			dmirror_pool_push(mdevice, pfn_to_page(pfn), 0);
	}

	mdevice->chunks[mdevice->nr_chunks++] = chunk;
	atomic64_add(DMIRROR_CHUNK_PAGES, &mdevice->pages_total);
	return 0;
}

/*
 * Make sure @want pages are free, and @want_large pages in chunks that
 * hand out large folios, as far as the unit's memory allows.  Called
 * before mmap_lock is taken; a shortfall is not an error, the pages that
 * find no device page simply stay in system memory.
 */
static void dmirror_pool_fill(struct dmirror_device *mdevice,
			      unsigned long want, unsigned long want_large)
{
	mutex_lock(&mdevice->chunk_lock);
	while (READ_ONCE(mdevice->pool_free) < want &&
	       !dmirror_chunk_add(mdevice, false))
		;
	while (READ_ONCE(mdevice->large_free) < want_large &&
	       !dmirror_chunk_add(mdevice, true))
		;
	mutex_unlock(&mdevice->chunk_lock);
}

/*
 * Take a free device folio of @order for data (a large one only from a
 * private unit): returned with one reference, locked, and (for private
 * memory) with as many system pages behind it to hold its data.  The
 * store is allocated as one block but split into order-0 pages at once,
 * so that a split of the device folio can hand each page its own.  The
 * caller fills the data in.
 */
static struct folio *dmirror_folio_get(struct dmirror_device *mdevice,
				       unsigned int order)
{
	struct page *page = dmirror_pool_pop(mdevice, order);
	struct folio *folio = (struct folio *)page;
	struct page *store = NULL;

	if (!page)
		return NULL;
	if (dmirror_is_private(mdevice)) {
		store = alloc_pages(GFP_HIGHUSER | __GFP_NOWARN |
				    (order ? __GFP_NORETRY : 0), order);
		if (!store) {
			dmirror_pool_push(mdevice, page, order);
			return NULL;
		}
		if (order)
			split_page(store, order);
	}
	zone_device_folio_init(folio, page_pgmap(page), order);
	folio_set_zone_device_data(folio, store);
	atomic64_add(1L << order, &mdevice->pages_in_use);
	return folio;
}

/* dev_pagemap_ops.folio_free: the last reference to a device folio is gone */
static void dmirror_folio_free(struct folio *folio)
{
	struct dmirror_device *mdevice = dmirror_page_unit(&folio->page);
	struct page *store = folio_zone_device_data(folio);
	long i, nr = folio_nr_pages(folio);

	if (dmirror_is_private(mdevice) && store) {
		for (i = 0; i < nr; i++)
			__free_page(store + i);
	}
	folio_set_zone_device_data(folio, NULL);
	atomic64_sub(nr, &mdevice->pages_in_use);
	/* a page of a large folio split in use merges back with its buddy */
	dmirror_pool_push(mdevice, &folio->page, folio_order(folio));
}

/*
 * dev_pagemap_ops.folio_split: a huge device folio was split while in
 * use; each new folio takes its page of the store.
 */
static void dmirror_folio_split(struct folio *head, struct folio *tail)
{
	struct page *store = folio_zone_device_data(head);

	if (store)
		folio_set_zone_device_data(tail, store + (folio_pfn(tail) -
							  folio_pfn(head)));
}

/* ------------------------------------------------------------------ */
/* The mirror                                                          */
/* ------------------------------------------------------------------ */

/*
 * One open file: a device context mirroring the address space of the
 * process that opened it. @pt maps a virtual page number to the pfn the
 * device may use for it, as an xarray value entry: pfn << 3, plus
 * DMIRROR_PT_WRITE if the device may write the page and DMIRROR_PT_EXCL if
 * it holds the page exclusively (make_device_exclusive_range()).
 *
 * A large folio, mapped whole where it is naturally aligned, is mirrored
 * by one multi-index entry covering all its pages, as a device with large
 * pages maps it with one page table entry: the entry holds the pfn of its
 * first page and the folio's order.  Storing it, looking it up and
 * dropping it cost one xarray operation instead of one per page.  When a
 * single page of it changes, the entry is broken up into one entry per
 * page first.
 */
struct dmirror {
	struct dmirror_device		*mdevice;
	struct mm_struct		*mm;
	struct mmu_interval_notifier	notifier;
	struct mutex			lock;	/* @pt and the notifier seq */
	struct xarray			pt;
	u64				flags;	/* HMM_DMIRROR_FLAG_* */
};

#define DMIRROR_PT_WRITE	BIT(0)
#define DMIRROR_PT_EXCL		BIT(1)
#define DMIRROR_PT_ORDER_SHIFT	2	/* then 4 bits of folio order */
#define DMIRROR_PT_ORDER_MASK	0xfUL
#define DMIRROR_PT_SHIFT	6

static void *dmirror_pt_entry(unsigned long pfn, unsigned long bits)
{
	return xa_mk_value((pfn << DMIRROR_PT_SHIFT) | bits);
}

static bool dmirror_pt_test(void *entry, unsigned long bit)
{
	return xa_to_value(entry) & bit;
}

/* The order of the folio a mirror entry covers; 0 for a page entry. */
static unsigned int dmirror_pt_order(void *entry)
{
	return (xa_to_value(entry) >> DMIRROR_PT_ORDER_SHIFT) &
	       DMIRROR_PT_ORDER_MASK;
}

/* The first index of the entry @entry, found at @index. */
static unsigned long dmirror_pt_base(void *entry, unsigned long index)
{
	return ALIGN_DOWN(index, 1UL << dmirror_pt_order(entry));
}

/* The page entry @entry, found at index @index, maps there. */
static struct page *dmirror_pt_page(void *entry, unsigned long index)
{
	unsigned long pfn = xa_to_value(entry) >> DMIRROR_PT_SHIFT;

	return pfn_to_page(pfn + index - dmirror_pt_base(entry, index));
}

/*
 * Replace the multi-index entry @entry, found at @index, by one entry per
 * page for the pages outside [@first, @last].  Those stores may fail for
 * want of memory: the mirror then forgets the pages, which the device
 * faults in again when it needs them.
 */
static void dmirror_pt_unhuge(struct dmirror *dmirror, unsigned long index,
			      void *entry, unsigned long first,
			      unsigned long last)
{
	unsigned long base = dmirror_pt_base(entry, index);
	unsigned long nr = 1UL << dmirror_pt_order(entry);
	unsigned long bits = xa_to_value(entry) &
			     (DMIRROR_PT_WRITE | DMIRROR_PT_EXCL);
	unsigned long pfn = xa_to_value(entry) >> DMIRROR_PT_SHIFT;
	unsigned long i;

	xa_erase(&dmirror->pt, base);
	for (i = 0; i < nr; i++) {
		if (base + i >= first && base + i <= last)
			continue;
		if (xa_is_err(xa_store(&dmirror->pt, base + i,
				       dmirror_pt_entry(pfn + i, bits),
				       GFP_ATOMIC | __GFP_NOWARN)))
			break;
	}
}

/*
 * Mirror page @index as @pfn with @bits; 0 or a negative error.  One walk
 * looks and stores, unless a multi-index entry covers @index: a store
 * into it would overwrite all of it, so it is broken up first.
 */
static int dmirror_pt_set(struct dmirror *dmirror, unsigned long index,
			  unsigned long pfn, unsigned long bits)
{
	XA_STATE(xas, &dmirror->pt, index);
	void *old;

	lockdep_assert_held(&dmirror->lock);
	do {
		xas_lock(&xas);
		old = xas_load(&xas);
		if (!old || !dmirror_pt_order(old))
			xas_store(&xas, dmirror_pt_entry(pfn, bits));
		xas_unlock(&xas);
	} while (xas_nomem(&xas, GFP_ATOMIC | __GFP_NOWARN));
	if (!old || !dmirror_pt_order(old))
		return xas_error(&xas);

	dmirror_pt_unhuge(dmirror, index, old, index, index);
	old = xa_store(&dmirror->pt, index, dmirror_pt_entry(pfn, bits),
		       GFP_ATOMIC | __GFP_NOWARN);
	return xa_is_err(old) ? xa_err(old) : 0;
}

/*
 * Mirror the 2^@order pages from the naturally aligned @index with one
 * entry, for the folio of that order at @pfn.
 */
static int dmirror_pt_set_huge(struct dmirror *dmirror, unsigned long index,
			       unsigned long pfn, unsigned long bits,
			       unsigned int order)
{
	void *old;

	lockdep_assert_held(&dmirror->lock);
	if (!IS_ENABLED(CONFIG_XARRAY_MULTI) || order > DMIRROR_PT_ORDER_MASK)
		return -EINVAL;
	old = xa_store_range(&dmirror->pt, index, index + (1UL << order) - 1,
			     dmirror_pt_entry(pfn, bits |
					      (order << DMIRROR_PT_ORDER_SHIFT)),
			     GFP_ATOMIC | __GFP_NOWARN);
	return xa_is_err(old) ? xa_err(old) : 0;
}

/* Is @page one of this unit's own device pages? */
static bool dmirror_page_is_local(struct dmirror *dmirror, struct page *page)
{
	return is_zone_device_page(page) &&
	       dmirror_page_unit(page) == dmirror->mdevice;
}

/*
 * Mirror @n pages of one folio from @page on, in order, at @index: with
 * one entry when they are a whole large folio at a naturally aligned
 * index, else (or if that store fails) one entry per page.
 */
static int dmirror_pt_set_run(struct dmirror *dmirror, unsigned long index,
			      struct page *page, unsigned long n,
			      unsigned long bits)
{
	unsigned long i, pfn = page_to_pfn(page);
	struct folio *folio = page_folio(page);
	int ret = 0;

	if (n > 1 && folio_nr_pages(folio) == n && IS_ALIGNED(index, n) &&
	    !dmirror_pt_set_huge(dmirror, index, pfn, bits,
				 folio_order(folio)))
		return 0;
	for (i = 0; !ret && i < n; i++)
		ret = dmirror_pt_set(dmirror, index + i, pfn + i, bits);
	return ret;
}

/*
 * Drop every mirror entry of [start, end); a multi-index entry reaching
 * out of the range keeps its other pages, one entry each.
 */
static void dmirror_pt_clear(struct dmirror *dmirror, unsigned long start,
			     unsigned long end)
{
	unsigned long first = start >> PAGE_SHIFT, last = (end - 1) >> PAGE_SHIFT;
	unsigned long index;
	void *entry;

	lockdep_assert_held(&dmirror->lock);
	xa_for_each_range(&dmirror->pt, index, entry, first, last) {
		unsigned long base = dmirror_pt_base(entry, index);
		unsigned long nr = 1UL << dmirror_pt_order(entry);

		if (nr == 1)
			xa_erase(&dmirror->pt, index);
		else if (base >= first && base + nr - 1 <= last)
			xa_erase(&dmirror->pt, base);
		else
			dmirror_pt_unhuge(dmirror, index, entry, first, last);
	}
}

/*
 * The CPU page tables of [range->start, range->end) are about to change:
 * forget what the device knew about them. The one exception is our own
 * exclusive grab, whose entries are stored once the grab has finished
 * (and which leaves the pages where they are).
 */
static bool dmirror_invalidate(struct mmu_interval_notifier *mni,
			       const struct mmu_notifier_range *range,
			       unsigned long cur_seq)
{
	struct dmirror *dmirror = container_of(mni, struct dmirror, notifier);

	if (range->event == MMU_NOTIFY_EXCLUSIVE && range->owner == dmirror)
		return true;

	if (mmu_notifier_range_blockable(range))
		mutex_lock(&dmirror->lock);
	else if (!mutex_trylock(&dmirror->lock))
		return false;

	mmu_interval_set_seq(mni, cur_seq);
	dmirror_pt_clear(dmirror, range->start, range->end);
	mutex_unlock(&dmirror->lock);
	return true;
}

static const struct mmu_interval_notifier_ops dmirror_notifier_ops = {
	.invalidate = dmirror_invalidate,
};

/*
 * Copy pages at @start between the mirror and @buf, in the direction
 * @write says, up to @npages of them or up to the first page the mirror
 * lacks (or may not write).  Returns the number of pages copied.
 */
static unsigned long dmirror_pt_copy(struct dmirror *dmirror,
				     unsigned long start, unsigned long npages,
				     void *buf, bool write)
{
	unsigned long i, n, first = start >> PAGE_SHIFT;
	struct page *pages[DMIRROR_BATCH];

	npages = min(npages, DMIRROR_BATCH);
	mutex_lock(&dmirror->lock);
	for (n = 0; n < npages; n++) {
		void *entry = xa_load(&dmirror->pt, first + n);

		if (!entry || (write && !dmirror_pt_test(entry,
							 DMIRROR_PT_WRITE)))
			break;
		pages[n] = dmirror_data_page(dmirror_pt_page(entry,
							     first + n));
	}
	/* The pages cannot go away: their invalidation needs our mutex. */
	for (i = 0; i < n; i++) {
		void *data = buf + i * PAGE_SIZE;
		void *vaddr = kmap_local_page(pages[i]);

		if (write)
			memcpy(vaddr, data, PAGE_SIZE);
		else
			memcpy(data, vaddr, PAGE_SIZE);
		kunmap_local(vaddr);
	}
	mutex_unlock(&dmirror->lock);
	return n;
}

/* ------------------------------------------------------------------ */
/* Faulting                                                            */
/* ------------------------------------------------------------------ */

/*
 * Run hmm_range_fault() on @range until it reports a state that is still
 * current, and return with the mirror's mutex held so the caller can use
 * the result before any invalidation gets through.
 */
static int dmirror_range_fault_locked(struct dmirror *dmirror,
				      struct hmm_range *range)
{
	unsigned long timeout =
		jiffies + msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	int ret;

	for (;;) {
		if (fatal_signal_pending(current))
			return -EINTR;
		if (time_after(jiffies, timeout))
			return -EBUSY;

		range->notifier_seq = mmu_interval_read_begin(range->notifier);
		mmap_read_lock(dmirror->mm);
		ret = hmm_range_fault(range);
		mmap_read_unlock(dmirror->mm);
		if (ret == -EBUSY)
			continue;
		if (ret)
			return ret;

		mutex_lock(&dmirror->lock);
		if (!mmu_interval_read_retry(range->notifier,
					     range->notifier_seq))
			return 0;
		mutex_unlock(&dmirror->lock);
	}
}

/*
 * Look at [start, end) (at most one batch) as the device would find it,
 * faulting nothing: @pfns gets hmm_range_fault()'s result, and on success
 * the mirror's mutex is held so that the pages stay what they were until
 * the caller drops it.  @flags may ask for HMM_PFN_REQ_FOLIO_ORDER.
 */
static int dmirror_look_flags_locked(struct dmirror *dmirror,
				     unsigned long start, unsigned long end,
				     unsigned long *pfns, unsigned long flags)
{
	struct hmm_range range = {
		.notifier = &dmirror->notifier,
		.start = start,
		.end = end,
		.hmm_pfns = pfns,
		.default_flags = flags,
		.dev_private_owner = dmirror->mdevice,
	};

	return dmirror_range_fault_locked(dmirror, &range);
}

static int dmirror_look_locked(struct dmirror *dmirror, unsigned long start,
			       unsigned long end, unsigned long *pfns)
{
	return dmirror_look_flags_locked(dmirror, start, end, pfns, 0);
}

/*
 * Fault [start, end) (at most DMIRROR_BATCH pages) in from the CPU page
 * tables, for writing if @write, and record the result in the mirror.
 *
 * The device's own private pages are taken as they are rather than
 * migrated back, except when it wants to write one that is mapped
 * read-only (after fork(), or in a read-only VMA): only a CPU fault can
 * grant that, so the batch is faulted again as if the pages were someone
 * else's, which brings them home first.
 */
static int dmirror_fault(struct dmirror *dmirror, unsigned long start,
			 unsigned long end, bool write)
{
	unsigned long pfns[DMIRROR_BATCH];
	struct hmm_range range = {
		.notifier = &dmirror->notifier,
		.start = start,
		.end = end,
		.hmm_pfns = pfns,
		.default_flags = HMM_PFN_REQ_FAULT |
				 (write ? HMM_PFN_REQ_WRITE : 0),
		.dev_private_owner = dmirror->mdevice,
	};
	unsigned long i, npages = (end - start) >> PAGE_SHIFT;
	int ret;

	for (;;) {
		ret = dmirror_range_fault_locked(dmirror, &range);
		if (ret)
			return ret;
		if (!write || !range.dev_private_owner)
			break;
		for (i = 0; i < npages; i++)
			if (!(pfns[i] & HMM_PFN_WRITE))
				break;
		if (i == npages)
			break;
		mutex_unlock(&dmirror->lock);
		range.dev_private_owner = NULL;
	}

	for (i = 0; i < npages; i++) {
		unsigned long pfn = pfns[i] & ~HMM_PFN_FLAGS;
		unsigned long bits = 0;

		if (pfns[i] & HMM_PFN_WRITE)
			bits |= DMIRROR_PT_WRITE;
		ret = dmirror_pt_set(dmirror, (start >> PAGE_SHIFT) + i, pfn,
				     bits);
		if (ret)
			break;
	}
	mutex_unlock(&dmirror->lock);
	return ret;
}

/*
 * One device fault: fill the mirror for all of [start, end), batch by
 * batch, as a device would on a miss that it services for the rest of the
 * access at once.
 */
static int dmirror_fault_range(struct dmirror *dmirror, unsigned long start,
			       unsigned long end, bool write)
{
	unsigned long addr, next;
	int ret;

	for (addr = start; addr < end; addr = next) {
		next = dmirror_batch_end(addr, end);
		ret = dmirror_fault(dmirror, addr, next, write);
		if (ret)
			return ret;
		if (fatal_signal_pending(current))
			return -EINTR;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Data commands                                                       */
/* ------------------------------------------------------------------ */

/*
 * Per-command scratch space: the pfn arrays of one batch and a bounce
 * buffer for its data.
 */
struct dmirror_work {
	unsigned long	src[DMIRROR_MIGRATE_BATCH];
	unsigned long	dst[DMIRROR_MIGRATE_BATCH];
	struct page	*pages[DMIRROR_BATCH];
	unsigned long	pfns[DMIRROR_MIGRATE_BATCH];
	u8		snap[DMIRROR_MIGRATE_BATCH];
	void		*bounce;
};

static struct dmirror_work *dmirror_work_alloc(bool bounce)
{
	struct dmirror_work *work = kzalloc(sizeof(*work), GFP_KERNEL);

	if (!work)
		return NULL;
	if (bounce) {
		work->bounce = kvmalloc(DMIRROR_BATCH * PAGE_SIZE, GFP_KERNEL);
		if (!work->bounce) {
			kfree(work);
			return NULL;
		}
	}
	return work;
}

static void dmirror_work_free(struct dmirror_work *work)
{
	if (!work)
		return;
	kvfree(work->bounce);
	kfree(work);
}

/*
 * Copy one batch [addr, next) of a command ending at @end between the
 * mirror and the bounce buffer.  Where the mirror lacks a page (or the
 * right to write it), the device faults: one fault fills the mirror for
 * the rest of the command, [page, end), and counts once in @faults.  A
 * concurrent invalidation can undo a fault before the copy gets there;
 * after DMIRROR_MAX_TRIES faults in a row without progress the command
 * gives up with EBUSY.
 */
static int dmirror_copy_batch(struct dmirror *dmirror, unsigned long addr,
			      unsigned long next, unsigned long end,
			      void *buf, bool write, u64 *faults)
{
	unsigned long done = 0, npages = (next - addr) >> PAGE_SHIFT;
	unsigned int stalls = 0;
	int ret;

	for (;;) {
		unsigned long n, pos = addr + (done << PAGE_SHIFT);

		n = dmirror_pt_copy(dmirror, pos, npages - done,
				    buf + (done << PAGE_SHIFT), write);
		done += n;
		if (done == npages)
			return 0;
		stalls = n ? 1 : stalls + 1;
		if (stalls > DMIRROR_MAX_TRIES)
			return -EBUSY;
		ret = dmirror_fault_range(dmirror, pos + (n << PAGE_SHIFT), end,
					  write);
		if (ret)
			return ret;
		(*faults)++;
	}
}

/*
 * Run @batch over the command's range one bounce buffer at a time and
 * hand each batch's bounce buffer out to cmd->ptr; cmd->cpages counts the
 * pages handed out.
 */
static int dmirror_batches_out(struct dmirror *dmirror,
			       struct hmm_dmirror_cmd *cmd,
			       struct dmirror_work *work,
			       int (*batch)(struct dmirror *dmirror,
					    unsigned long addr,
					    unsigned long next,
					    struct dmirror_work *work,
					    struct hmm_dmirror_cmd *cmd))
{
	unsigned long start = cmd->addr;
	unsigned long end = start + (cmd->npages << PAGE_SHIFT);
	void __user *uptr = u64_to_user_ptr(cmd->ptr);
	unsigned long addr, next;
	int ret;

	for (addr = start; addr < end; addr = next) {
		next = dmirror_batch_end(addr, end);
		ret = batch(dmirror, addr, next, work, cmd);
		if (ret)
			return ret;
		if (copy_to_user(uptr + (addr - start), work->bounce,
				 next - addr))
			return -EFAULT;
		cmd->cpages += (next - addr) >> PAGE_SHIFT;
	}
	return 0;
}

static int dmirror_read_batch(struct dmirror *dmirror, unsigned long addr,
			      unsigned long next, struct dmirror_work *work,
			      struct hmm_dmirror_cmd *cmd)
{
	unsigned long end = cmd->addr + (cmd->npages << PAGE_SHIFT);

	return dmirror_copy_batch(dmirror, addr, next, end, work->bounce,
				  false, &cmd->faults);
}

/* HMM_DMIRROR_READ: the device reads the range into cmd->ptr. */
static int dmirror_read(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd,
			struct dmirror_work *work)
{
	return dmirror_batches_out(dmirror, cmd, work, dmirror_read_batch);
}

/* HMM_DMIRROR_WRITE: the device writes cmd->ptr into the range. */
static int dmirror_write(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd,
			 struct dmirror_work *work)
{
	unsigned long start = cmd->addr;
	unsigned long end = start + (cmd->npages << PAGE_SHIFT);
	const void __user *uptr = u64_to_user_ptr(cmd->ptr);
	unsigned long addr, next;
	int ret;

	for (addr = start; addr < end; addr = next) {
		next = dmirror_batch_end(addr, end);
		if (copy_from_user(work->bounce, uptr + (addr - start),
				   next - addr))
			return -EFAULT;
		ret = dmirror_copy_batch(dmirror, addr, next, end,
					 work->bounce, true, &cmd->faults);
		if (ret)
			return ret;
		cmd->cpages += (next - addr) >> PAGE_SHIFT;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Migration                                                           */
/* ------------------------------------------------------------------ */

/*
 * Migration works on whole VMAs that may be migrated at all: every page of
 * [start, end) must be mapped, accessible, and neither hugetlb nor a
 * special mapping. Checked up front so that a bad range moves nothing.
 */
static int dmirror_check_migratable(struct mm_struct *mm, unsigned long start,
				    unsigned long end)
{
	unsigned long addr = start;

	mmap_assert_locked(mm);
	while (addr < end) {
		struct vm_area_struct *vma = vma_lookup(mm, addr);

		if (!vma || !vma_is_accessible(vma) ||
		    is_vm_hugetlb_page(vma) ||
		    (vma->vm_flags & VM_SPECIAL) || vma_is_dax(vma))
			return -EINVAL;
		addr = vma->vm_end;
	}
	return 0;
}

/*
 * One order-0 device page, with its data, for each of the @nr entries of
 * the compound source at @i that gets no huge device folio: the core then
 * splits the source folio, or fills the empty slot, page by page.
 */
static bool dmirror_small_dsts(struct dmirror_device *mdevice,
			       struct migrate_vma *args, unsigned long i,
			       long nr)
{
	struct page *spage = migrate_pfn_to_page(args->src[i]);
	long j;

	/* entries left without a page must not keep an earlier step's */
	memset(&args->dst[i], 0, nr * sizeof(args->dst[i]));
	for (j = 0; j < nr; j++) {
		struct folio *dfolio = dmirror_folio_get(mdevice, 0);

		if (!dfolio)
			return false;
		if (spage)
			copy_highpage(dmirror_data_page(&dfolio->page),
				      spage + j);
		else
			clear_highpage(dmirror_data_page(&dfolio->page));
		args->dst[i + j] = migrate_pfn(folio_pfn(dfolio));
	}
	return true;
}

/*
 * Give each page migrate_vma_setup() collected a device page holding a
 * copy of its data (zeroes for a page that was never populated), and each
 * compound entry (a large folio of any order, or an empty huge slot) a
 * device folio of the same order, or, when there is none (none left,
 * HMM_DMIRROR_FLAG_FAIL_ALLOC), one device page per page.  Returns false
 * if even those ran out: the entry then stays, for the caller to move
 * again without compound entries.
 */
static bool dmirror_prepare_to_device(struct dmirror_device *mdevice,
				      struct migrate_vma *args)
{
	bool fail_large = READ_ONCE(mdevice->fail_alloc);
	bool all = true;
	unsigned long i;

	for (i = 0; i < args->npages; i++) {
		struct page *spage = migrate_pfn_to_page(args->src[i]);
		bool large = args->src[i] & MIGRATE_PFN_COMPOUND;
		struct folio *dfolio = NULL;
		long j, nr = 1;

		args->dst[i] = 0;
		if (!(args->src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		if (large) {
			unsigned int order = spage ?
				folio_order(page_folio(spage)) :
				DMIRROR_LARGE_ORDER;

			nr = 1L << order;
			if (!fail_large && order <= DMIRROR_LARGE_ORDER)
				dfolio = dmirror_folio_get(mdevice, order);
			if (!dfolio) {
				all &= dmirror_small_dsts(mdevice, args, i, nr);
				i += nr - 1;
				continue;
			}
		} else {
			dfolio = dmirror_folio_get(mdevice, 0);
			if (!dfolio)
				continue;
		}
		for (j = 0; j < nr; j++) {
			struct page *dpage = folio_page(dfolio, j);

			if (spage)
				copy_highpage(dmirror_data_page(dpage),
					      spage + j);
			else
				clear_highpage(dmirror_data_page(dpage));
		}
		args->dst[i] = migrate_pfn(folio_pfn(dfolio)) |
			       (large ? MIGRATE_PFN_COMPOUND : 0);
	}
	return all;
}

/*
 * Give each of this unit's pages migrate_vma_setup() collected a system
 * page with its data, and each large device folio a system folio of its
 * order, or, when none can be had (HMM_DMIRROR_FLAG_FAIL_ALLOC), one page
 * for each of its pages, or for a CPU fault only for the page the CPU
 * wants: the core then splits the device folio, and the pages given none
 * stay in device memory.  Empty slots are collected too (the core offers
 * to populate them); they are left alone.
 */
static void dmirror_prepare_to_system(struct dmirror_device *mdevice,
				      struct migrate_vma *args)
{
	bool fail_large = READ_ONCE(mdevice->fail_alloc);
	unsigned long i, addr;

	for (i = 0, addr = args->start; i < args->npages;
	     i++, addr += PAGE_SIZE) {
		struct page *spage = migrate_pfn_to_page(args->src[i]);
		struct folio *dfolio = NULL;
		long j, nr = 1;

		args->dst[i] = 0;
		if (!spage || !(args->src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		if (args->src[i] & MIGRATE_PFN_COMPOUND) {
			nr = folio_nr_pages(page_folio(spage));
			if (!fail_large)
				dfolio = vma_alloc_folio(GFP_TRANSHUGE_LIGHT,
							 folio_order(page_folio(spage)),
							 args->vma, addr, true);
			if (!dfolio) {
				/* one page each: the core splits the source */
				for (j = 0; j < nr; j++) {
					struct page *dpage;

					args->dst[i + j] = 0;
					if (args->fault_page &&
					    args->fault_page != spage + j)
						continue;
					dpage = alloc_page_vma(GFP_HIGHUSER_MOVABLE,
							       args->vma,
							       addr + j * PAGE_SIZE);
					if (!dpage)
						continue;
					lock_page(dpage);
					copy_highpage(dpage,
						      dmirror_data_page(spage + j));
					args->dst[i + j] = migrate_pfn(page_to_pfn(dpage));
				}
				i += nr - 1;
				addr += (nr - 1) * PAGE_SIZE;
				continue;
			}
		} else {
			struct page *dpage;

			dpage = alloc_page_vma(GFP_HIGHUSER_MOVABLE, args->vma,
					       addr);
			if (!dpage)
				continue;
			dfolio = page_folio(dpage);
		}
		folio_lock(dfolio);
		for (j = 0; j < nr; j++)
			copy_highpage(folio_page(dfolio, j),
				      dmirror_data_page(spage + j));
		args->dst[i] = migrate_pfn(folio_pfn(dfolio)) |
			       (nr > 1 ? MIGRATE_PFN_COMPOUND : 0);
	}
}

/*
 * Pages of a finished migrate_vma_pages() that really moved, each folio
 * counted in @mdevice's per-order counters.
 */
static unsigned long dmirror_count_moved(struct dmirror_device *mdevice,
					 const unsigned long *src,
					 const unsigned long *dst,
					 unsigned long npages, bool to_device)
{
	unsigned long i, moved = 0;

	for (i = 0; i < npages; i++) {
		struct page *dpage = migrate_pfn_to_page(dst[i]);
		unsigned int order;

		if (!(src[i] & MIGRATE_PFN_MIGRATE) || !dpage)
			continue;
		order = folio_order(page_folio(dpage));
		moved += 1UL << order;
		dmirror_count_folio(mdevice, order, to_device);
	}
	return moved;
}

/*
 * HMM_DMIRROR_FLAG_HOLD_LOCKED: keep this unit's pages of [start, end) (at
 * most one batch) locked for DMIRROR_HOLD_MS while they stay mapped, as a
 * driver whose copy engine is busy with them would, before they migrate.
 * A CPU fault or another device meeting one of them must wait, not spin.
 */
static void dmirror_hold_locked(struct dmirror *dmirror, unsigned long start,
				unsigned long end, struct dmirror_work *work)
{
	unsigned long i, n = 0, locked, npages = (end - start) >> PAGE_SHIFT;

	if (dmirror_look_locked(dmirror, start, end, work->pfns))
		return;
	/* Still mapped (the mutex holds off invalidations): a reference sticks. */
	for (i = 0; i < npages; i++) {
		struct page *page;

		if (!(work->pfns[i] & HMM_PFN_VALID))
			continue;
		page = hmm_pfn_to_page(work->pfns[i]);
		if (dmirror_page_is_local(dmirror, page) &&
		    folio_try_get(page_folio(page)))
			work->pages[n++] = page;
	}
	mutex_unlock(&dmirror->lock);

	/* Never sleep on a page lock while holding another: trylock. */
	for (i = 0, locked = 0; i < n; i++) {
		if (trylock_page(work->pages[i]))
			work->pages[locked++] = work->pages[i];
		else
			put_page(work->pages[i]);
	}
	msleep(DMIRROR_HOLD_MS);
	for (i = 0; i < locked; i++) {
		unlock_page(work->pages[i]);
		put_page(work->pages[i]);
	}
}

/*
 * One migration step over [@addr, @next) of @vma, with @flags.  Returns
 * the pages moved, or a negative error from migrate_vma_setup(); *@retry
 * is set when a compound entry stayed for want of a huge device folio.
 */
static long dmirror_migrate_step(struct dmirror_device *mdevice,
				 struct dmirror_work *work,
				 struct vm_area_struct *vma, unsigned long addr,
				 unsigned long next, unsigned long flags,
				 bool *retry)
{
	bool to_device = flags & MIGRATE_VMA_SELECT_SYSTEM;
	struct migrate_vma args = {
		.vma = vma,
		.src = work->src,
		.dst = work->dst,
		.start = addr,
		.end = next,
		.pgmap_owner = mdevice,
		.flags = flags,
	};
	unsigned long moved;
	int ret;

	ret = migrate_vma_setup(&args);
	if (ret)
		return ret;
	if (to_device)
		*retry = !dmirror_prepare_to_device(mdevice, &args);
	else
		dmirror_prepare_to_system(mdevice, &args);
	migrate_vma_pages(&args);
	moved = dmirror_count_moved(mdevice, args.src, args.dst, args.npages,
				    to_device);
	migrate_vma_finalize(&args);
	atomic64_add(moved, to_device ? &mdevice->to_device :
					&mdevice->to_system);
	return moved;
}

/*
 * Migrate [cmd->addr, +npages) into this unit's memory (@to_device) or
 * this unit's pages of it back to system memory. cmd->cpages counts the
 * pages that moved.  A private unit moves THPs whole into huge device
 * folios (MIGRATE_VMA_SELECT_COMPOUND); a step where that fails is done
 * again page by page.
 */
static int dmirror_migrate(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd,
			   struct dmirror_work *work, bool to_device)
{
	struct dmirror_device *mdevice = dmirror->mdevice;
	unsigned long start = cmd->addr;
	unsigned long end = start + (cmd->npages << PAGE_SHIFT);
	bool large = dmirror_is_private(mdevice);
	struct mm_struct *mm = dmirror->mm;
	unsigned long addr, next;
	int ret;

	if (to_device)
		dmirror_pool_fill(mdevice, cmd->npages,
				  large && !READ_ONCE(mdevice->fail_alloc) &&
				  cmd->npages >= DMIRROR_MIN_LARGE_PAGES ?
				  cmd->npages : 0);
	else if (READ_ONCE(dmirror->flags) & HMM_DMIRROR_FLAG_HOLD_LOCKED)
		dmirror_hold_locked(dmirror, start,
				    dmirror_batch_end(start, end), work);

	mmap_read_lock(mm);
	ret = dmirror_check_migratable(mm, start, end);
	for (addr = start; !ret && addr < end; addr = next) {
		struct vm_area_struct *vma = vma_lookup(mm, addr);
		unsigned long flags;
		bool retry = false;
		long moved;

		if (!vma) {
			ret = -EINVAL;
			break;
		}
		next = min(dmirror_migrate_end(addr, end), vma->vm_end);
		if (to_device)
			flags = MIGRATE_VMA_SELECT_SYSTEM;
		else if (large)
			flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE;
		else
			flags = MIGRATE_VMA_SELECT_DEVICE_COHERENT;
		if (large)
			flags |= MIGRATE_VMA_SELECT_COMPOUND;

		moved = dmirror_migrate_step(mdevice, work, vma, addr, next,
					     flags, &retry);
		if (moved >= 0 && retry) {
			cmd->cpages += moved;
			flags &= ~MIGRATE_VMA_SELECT_COMPOUND;
			moved = dmirror_migrate_step(mdevice, work, vma, addr,
						     next, flags, &retry);
		}
		if (moved < 0) {
			ret = moved;
			break;
		}
		cmd->cpages += moved;
		if (fatal_signal_pending(current))
			ret = -EINTR;
	}
	mmap_read_unlock(mm);
	return ret;
}

/*
 * The number of pages from @pfns[0] on (at most @n) that are pages of one
 * folio, in order, with the same hmm_range_fault() flags: a run that the
 * device maps and copies in one go.
 */
static unsigned long dmirror_folio_run(const unsigned long *pfns,
				       unsigned long n)
{
	struct page *page = hmm_pfn_to_page(pfns[0]);
	struct folio *folio = page_folio(page);
	unsigned long i;

	n = min_t(unsigned long, n,
		  folio_nr_pages(folio) - folio_page_idx(folio, page));
	/* the flags are the high bits: equal flags, consecutive pfns */
	for (i = 1; i < n; i++)
		if (pfns[i] != pfns[0] + i)
			break;
	return i;
}

/*
 * Copy the data of the @n pages from @page on, pages of one of this
 * unit's folios in order, to user memory at @uptr, without taking a page
 * fault (the caller holds the mirror's mutex).  A folio's data is one
 * block: a private folio's store is allocated in one piece, a coherent
 * folio is its own store.  Returns 0, or -EFAULT if it would fault.
 */
static int dmirror_copy_out_nofault(void __user *uptr, struct page *page,
				    unsigned long n)
{
	struct page *store = dmirror_data_page(page);
	unsigned long i;

	if (!IS_ENABLED(CONFIG_HIGHMEM))
		return copy_to_user_nofault(uptr, page_address(store),
					    n << PAGE_SHIFT) ? -EFAULT : 0;
	for (i = 0; i < n; i++) {
		void *vaddr = kmap_local_page(store + i);
		long left = copy_to_user_nofault(uptr + (i << PAGE_SHIFT),
						 vaddr, PAGE_SIZE);

		kunmap_local(vaddr);
		if (left)
			return -EFAULT;
	}
	return 0;
}

/*
 * One step of the read-back that ends MIGRATE_TO_DEV, [addr, next) inside
 * one PMD: every page of it must now be in this unit's memory, where the
 * device finds it without a fault (hmm_range_fault() only looks).  Each
 * run of a folio's pages is recorded in the mirror as the device maps it
 * (a huge folio mapped whole with one entry) and its data copied straight
 * to user memory at @uptr.  The copy may not fault under the mutex:
 * -EAGAIN when it would, for the caller to fault @uptr in and try again.
 */
static int dmirror_held_step(struct dmirror *dmirror, unsigned long addr,
			     unsigned long next, struct dmirror_work *work,
			     void __user *uptr)
{
	unsigned long i, n, npages = (next - addr) >> PAGE_SHIFT;
	unsigned long first = addr >> PAGE_SHIFT;
	int ret;

	ret = dmirror_look_locked(dmirror, addr, next, work->pfns);
	if (ret)
		return ret;
	for (i = 0; i < npages; i += n) {
		unsigned long pfn = work->pfns[i];
		unsigned long bits = 0;
		struct page *page;

		if (!(pfn & HMM_PFN_VALID) ||
		    !dmirror_page_is_local(dmirror, hmm_pfn_to_page(pfn))) {
			ret = -ENOENT;
			break;
		}
		page = hmm_pfn_to_page(pfn);
		if (pfn & HMM_PFN_WRITE)
			bits |= DMIRROR_PT_WRITE;
		n = dmirror_folio_run(work->pfns + i, npages - i);
		ret = dmirror_pt_set_run(dmirror, first + i, page, n, bits);
		if (ret)
			break;
		if (dmirror_copy_out_nofault(uptr + (i << PAGE_SHIFT), page,
					     n)) {
			ret = -EAGAIN;
			break;
		}
	}
	mutex_unlock(&dmirror->lock);
	return ret;
}

/*
 * HMM_DMIRROR_MIGRATE_TO_DEV: migrate, then hand back the data of the
 * range as the device now holds it, so a test can check what moved.
 * cmd->cpages is the number of pages in this unit's memory afterwards,
 * whether they moved now or earlier; a page that is not (nothing could
 * move it: a shared mapping, a page in another device's memory, a pinned
 * page) fails the command with -ENOENT.  Nothing is counted in
 * cmd->faults.  The read-back goes a huge page's worth at a time, without
 * a bounce buffer; -EBUSY if the user memory it writes to keeps going away
 * under it.
 */
static int dmirror_migrate_to_device(struct dmirror *dmirror,
				     struct hmm_dmirror_cmd *cmd,
				     struct dmirror_work *work)
{
	unsigned long start = cmd->addr;
	unsigned long end = start + (cmd->npages << PAGE_SHIFT);
	void __user *uptr = u64_to_user_ptr(cmd->ptr);
	unsigned long addr, next;
	int ret;

	ret = dmirror_migrate(dmirror, cmd, work, true);
	if (ret)
		return ret;
	cmd->cpages = 0;
	for (addr = start; addr < end; addr = next) {
		void __user *to = uptr + (addr - start);
		unsigned int tries = 0;

		next = dmirror_migrate_end(addr, end);
		while ((ret = dmirror_held_step(dmirror, addr, next, work,
						to)) == -EAGAIN) {
			if (fault_in_writeable(to, next - addr))
				return -EFAULT;
			if (++tries > DMIRROR_MAX_TRIES)
				return -EBUSY;
		}
		if (ret)
			return ret;
		cmd->cpages += (next - addr) >> PAGE_SHIFT;
	}
	return 0;
}

/*
 * dev_pagemap_ops.migrate_to_ram: the CPU touched one of our private
 * pages.  Bring its folio back to system memory: a huge folio whole when
 * it is mapped whole, in order, where the fault is (else the core splits
 * it and only the page touched comes back), a page alone.
 */
static vm_fault_t dmirror_devmem_fault(struct vm_fault *vmf)
{
	struct dmirror_device *mdevice = dmirror_page_unit(vmf->page);
	struct folio *folio = page_folio(vmf->page);
	unsigned long addr = vmf->address & PAGE_MASK;
	unsigned long small[2] = { 0, 0 }, *arrays = small;
	struct migrate_vma args = {
		.vma = vmf->vma,
		.start = addr,
		.end = addr + PAGE_SIZE,
		.pgmap_owner = mdevice,
		.flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
		.fault_page = vmf->page,
	};
	vm_fault_t ret = 0;
	unsigned long moved, i;

	if (folio_test_large(folio)) {
		unsigned long first = addr - (folio_page_idx(folio, vmf->page)
					      << PAGE_SHIFT);
		unsigned long last = first + folio_size(folio);

		if (first >= vmf->vma->vm_start && last <= vmf->vma->vm_end &&
		    IS_ALIGNED(first, folio_size(folio)))
			arrays = kcalloc(2 * folio_nr_pages(folio),
					 sizeof(*arrays), GFP_KERNEL);
		if (!arrays) {
			arrays = small;
		} else if (arrays != small) {
			args.start = first;
			args.end = last;
			args.flags |= MIGRATE_VMA_SELECT_COMPOUND;
		}
	}
	args.src = arrays;
	args.dst = arrays + ((args.end - args.start) >> PAGE_SHIFT);

	if (migrate_vma_setup(&args)) {
		ret = VM_FAULT_SIGBUS;
		goto out;
	}
	dmirror_prepare_to_system(mdevice, &args);
	for (i = 0; i < args.npages; i++)
		if (migrate_pfn_to_page(args.src[i]) &&
		    (args.src[i] & MIGRATE_PFN_MIGRATE) && !args.dst[i] &&
		    !(args.src[i] & MIGRATE_PFN_COMPOUND))
			ret = VM_FAULT_OOM;
	migrate_vma_pages(&args);
	moved = dmirror_count_moved(mdevice, args.src, args.dst, args.npages,
				    false);
	if (moved) {
		atomic64_inc(&mdevice->faults);
		atomic64_add(moved, &mdevice->to_system);
	}
	migrate_vma_finalize(&args);
out:
	if (arrays != small)
		kfree(arrays);
	return ret;
}

static const struct dev_pagemap_ops dmirror_pagemap_ops = {
	.folio_free	= dmirror_folio_free,
	.folio_split	= dmirror_folio_split,
	.migrate_to_ram	= dmirror_devmem_fault,
};

/*
 * Move the @npages device pages selected in work->src (by
 * migrate_device_range() or migrate_device_pfns()) to system pages with
 * their data; each is unmapped wherever it was mapped and the new page
 * mapped in its place.  A huge device folio goes to a THP or, failing
 * that and only when the entries are a range (@range: the entries of its
 * other pages follow it), to one page per page, the core splitting it.
 * Returns the number of pages moved.
 */
static unsigned long dmirror_evict_selected(struct dmirror_device *mdevice,
					    struct dmirror_work *work,
					    unsigned long npages, bool range)
{
	bool fail_large = READ_ONCE(mdevice->fail_alloc);
	unsigned long i, j, moved;

	for (i = 0; i < npages; i++)
		work->dst[i] = 0;
	for (i = 0; i < npages; i++) {
		struct page *spage = migrate_pfn_to_page(work->src[i]);
		struct folio *dfolio = NULL;
		unsigned long nr = 1;

		if (!spage || !(work->src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		if (work->src[i] & MIGRATE_PFN_COMPOUND) {
			nr = folio_nr_pages(page_folio(spage));
			if (!fail_large)
				dfolio = folio_alloc(GFP_HIGHUSER_MOVABLE |
						     __GFP_NOWARN,
						     folio_order(page_folio(spage)));
			if (!dfolio && !range)
				continue;
		}
		if (dfolio) {
			folio_lock(dfolio);
			for (j = 0; j < nr; j++)
				copy_highpage(folio_page(dfolio, j),
					      dmirror_data_page(spage + j));
			work->dst[i] = migrate_pfn(folio_pfn(dfolio)) |
				       MIGRATE_PFN_COMPOUND;
			continue;
		}
		/* Eviction must not lose data, so it waits for memory. */
		for (j = 0; j < nr && i + j < npages; j++) {
			struct page *dpage;

			dpage = alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_NOFAIL);
			lock_page(dpage);
			copy_highpage(dpage, dmirror_data_page(spage + j));
			work->dst[i + j] = migrate_pfn(page_to_pfn(dpage));
		}
		i += nr - 1;
	}
	migrate_device_pages(work->src, work->dst, npages);
	moved = dmirror_count_moved(mdevice, work->src, work->dst, npages,
				    false);
	migrate_device_finalize(work->src, work->dst, npages);
	return moved;
}

/* Evict a whole chunk by pfn range, a huge page's worth at a time. */
static unsigned long dmirror_evict_range(struct dmirror_device *mdevice,
					 struct dmirror_work *work,
					 unsigned long first)
{
	unsigned long moved = 0, pfn;

	for (pfn = first; pfn < first + DMIRROR_CHUNK_PAGES;
	     pfn += DMIRROR_MIGRATE_BATCH) {
		migrate_device_range(work->src, pfn, DMIRROR_MIGRATE_BATCH);
		moved += dmirror_evict_selected(mdevice, work,
						DMIRROR_MIGRATE_BATCH, true);
		cond_resched();
	}
	return moved;
}

/* Evict the *@n pfns collected in work->src, if any, and empty it. */
static unsigned long dmirror_evict_collected(struct dmirror_device *mdevice,
					     struct dmirror_work *work,
					     unsigned long *n)
{
	unsigned long moved;

	if (!*n)
		return 0;
	migrate_device_pfns(work->src, *n);
	moved = dmirror_evict_selected(mdevice, work, *n, false);
	*n = 0;
	return moved;
}

/*
 * Collect the pages of a chunk that look in use, to be named one by one to
 * migrate_device_pfns() as a driver evicting the scattered pages of a
 * buffer would.  work->src gathers up to DMIRROR_BATCH pfns across chunks
 * (*@n of them), evicted whenever it is full.
 */
static unsigned long dmirror_evict_sparse(struct dmirror_device *mdevice,
					  struct dmirror_work *work,
					  unsigned long first,
					  unsigned long *n)
{
	unsigned long moved = 0, pfn;

	for (pfn = first; pfn < first + DMIRROR_CHUNK_PAGES; pfn++) {
		if (!page_ref_count(pfn_to_page(pfn)))
			continue;
		work->src[(*n)++] = pfn;
		if (*n < DMIRROR_BATCH)
			continue;
		moved += dmirror_evict_collected(mdevice, work, n);
		cond_resched();
	}
	return moved;
}

/*
 * One pass over every chunk of the unit; returns the pages moved.  With
 * @sparse (HMM_DMIRROR_RELEASE) the pages in use are named by pfn,
 * otherwise (unload) every chunk goes by range.  Either way a page freed
 * or allocated meanwhile is handled: selection only takes a page in use.
 */
static unsigned long dmirror_evict_pass(struct dmirror_device *mdevice,
					struct dmirror_work *work, bool sparse)
{
	unsigned long moved = 0, first, n = 0;
	unsigned int i;

	lockdep_assert_held(&mdevice->chunk_lock);
	for (i = 0; i < mdevice->nr_chunks; i++) {
		first = PHYS_PFN(mdevice->chunks[i]->pgmap.range.start);
		if (sparse)
			moved += dmirror_evict_sparse(mdevice, work, first, &n);
		else
			moved += dmirror_evict_range(mdevice, work, first);
	}
	return moved + dmirror_evict_collected(mdevice, work, &n);
}

/*
 * Move everything out of the unit's memory. With @until_empty (module
 * unload) keep going until no page is in use; otherwise a few passes.
 */
static unsigned long dmirror_evict(struct dmirror_device *mdevice,
				   struct dmirror_work *work, bool until_empty)
{
	unsigned long moved = 0;
	unsigned int pass;

	atomic64_inc(&mdevice->evictions);
	mutex_lock(&mdevice->chunk_lock);
	for (pass = 0;; pass++) {
		unsigned long n = dmirror_evict_pass(mdevice, work,
						     !until_empty);

		moved += n;
		if (!atomic64_read(&mdevice->pages_in_use))
			break;
		if (!until_empty && pass >= 3)
			break;
		if (until_empty && pass && !(pass % 1000))
			dev_warn(&mdevice->dev, "%lld pages still in use\n",
				 (long long)atomic64_read(&mdevice->pages_in_use));
		if (!n)
			usleep_range(10000, 20000);
	}
	mutex_unlock(&mdevice->chunk_lock);
	atomic64_add(moved, &mdevice->to_system);
	return moved;
}

/* HMM_DMIRROR_RELEASE: evict the whole unit (the range is not used). */
static int dmirror_release_memory(struct dmirror *dmirror,
				  struct hmm_dmirror_cmd *cmd,
				  struct dmirror_work *work)
{
	cmd->cpages = dmirror_evict(dmirror->mdevice, work, false);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Snapshot                                                            */
/* ------------------------------------------------------------------ */

/* The HMM_DMIRROR_PROT_* byte describing one hmm_range_fault() result. */
static u8 dmirror_snap_byte(struct dmirror_device *mdevice,
			    unsigned long hmm_pfn)
{
	struct page *page;
	unsigned int order;
	u8 b;

	if (hmm_pfn & HMM_PFN_ERROR)
		return HMM_DMIRROR_PROT_ERROR;
	if (!(hmm_pfn & HMM_PFN_VALID))
		return HMM_DMIRROR_PROT_NONE;

	b = (hmm_pfn & HMM_PFN_WRITE) ? HMM_DMIRROR_PROT_WRITE :
					 HMM_DMIRROR_PROT_READ;
	order = hmm_pfn_to_map_order(hmm_pfn);
	if (order == PMD_SHIFT - PAGE_SHIFT)
		b |= HMM_DMIRROR_PROT_PMD;
	else if (order == PUD_SHIFT - PAGE_SHIFT)
		b |= HMM_DMIRROR_PROT_PUD;

	page = hmm_pfn_to_page(hmm_pfn);
	if (is_zero_pfn(page_to_pfn(page)))
		b |= HMM_DMIRROR_PROT_ZERO;
	else if (is_device_private_page(page))
		b |= dmirror_page_unit(page) == mdevice ?
			HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL :
			HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE;
	else if (is_device_coherent_page(page))
		b |= dmirror_page_unit(page) == mdevice ?
			HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL :
			HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE;
	return b;
}

/* The HMM_DMIRROR_FOLIO_ORDERS byte of one hmm_range_fault() result. */
static u8 dmirror_order_byte(unsigned long hmm_pfn)
{
	if ((hmm_pfn & HMM_PFN_ERROR) || !(hmm_pfn & HMM_PFN_VALID))
		return HMM_DMIRROR_ORDER_NONE;
	return hmm_pfn_to_map_order(hmm_pfn);
}

/*
 * HMM_DMIRROR_SNAPSHOT and HMM_DMIRROR_FOLIO_ORDERS (@orders): one byte
 * per page describing the CPU's mapping as the device would find it,
 * without faulting anything in (the mirror is left untouched too).  It
 * looks a huge page's worth at a time, so that a large folio mapped by
 * PTEs is seen whole and reported with its order, unless the file set
 * HMM_DMIRROR_FLAG_NO_FOLIO_ORDER.
 */
static int dmirror_describe(struct dmirror *dmirror,
			    struct hmm_dmirror_cmd *cmd,
			    struct dmirror_work *work, bool orders)
{
	unsigned long start = cmd->addr;
	unsigned long end = start + (cmd->npages << PAGE_SHIFT);
	u8 __user *uptr = u64_to_user_ptr(cmd->ptr);
	unsigned long addr, next, i, n, req = HMM_PFN_REQ_FOLIO_ORDER;
	int ret;

	if (READ_ONCE(dmirror->flags) & HMM_DMIRROR_FLAG_NO_FOLIO_ORDER)
		req = 0;
	for (addr = start; addr < end; addr = next) {
		next = dmirror_migrate_end(addr, end);
		n = (next - addr) >> PAGE_SHIFT;
		ret = dmirror_look_flags_locked(dmirror, addr, next, work->pfns,
						req);
		if (ret)
			return ret;
		/* a test per step, not an indirect call per page */
		if (orders) {
			for (i = 0; i < n; i++)
				work->snap[i] = dmirror_order_byte(work->pfns[i]);
		} else {
			for (i = 0; i < n; i++)
				work->snap[i] = dmirror_snap_byte(dmirror->mdevice,
								  work->pfns[i]);
		}
		mutex_unlock(&dmirror->lock);

		if (copy_to_user(uptr + ((addr - start) >> PAGE_SHIFT),
				 work->snap, n))
			return -EFAULT;
		cmd->cpages += n;
	}
	return 0;
}

static int dmirror_snapshot(struct dmirror *dmirror,
			    struct hmm_dmirror_cmd *cmd,
			    struct dmirror_work *work)
{
	return dmirror_describe(dmirror, cmd, work, false);
}

static int dmirror_folio_orders(struct dmirror *dmirror,
				struct hmm_dmirror_cmd *cmd,
				struct dmirror_work *work)
{
	return dmirror_describe(dmirror, cmd, work, true);
}

/* ------------------------------------------------------------------ */
/* Exclusive access                                                    */
/* ------------------------------------------------------------------ */

/*
 * Page @i of the batch at @start is now held exclusively: note it in the
 * mirror and copy its data to the bounce buffer.
 */
static int dmirror_exclusive_record(struct dmirror *dmirror,
				    unsigned long start, unsigned long i,
				    struct page *page, struct dmirror_work *work)
{
	void *vaddr;
	int ret;

	ret = dmirror_pt_set(dmirror, (start >> PAGE_SHIFT) + i,
			     page_to_pfn(page),
			     DMIRROR_PT_WRITE | DMIRROR_PT_EXCL);
	if (ret)
		return ret;
	vaddr = kmap_local_page(page);
	memcpy(work->bounce + i * PAGE_SIZE, vaddr, PAGE_SIZE);
	kunmap_local(vaddr);
	return 0;
}

/*
 * Make [start, end) device-exclusive, with the range call or (flag
 * HMM_DMIRROR_FLAG_EXCLUSIVE_BY_PAGE) page by page with the newer
 * make_device_exclusive().  Either way the result reads like the range
 * call's: the number of slots filled in @pages, a NULL slot for a page
 * that could not be taken, or a negative error with nothing held.
 */
static int dmirror_exclusive_grab(struct dmirror *dmirror, unsigned long start,
				  unsigned long end, struct page **pages)
{
	unsigned long i, npages = (end - start) >> PAGE_SHIFT;

	if (!(READ_ONCE(dmirror->flags) & HMM_DMIRROR_FLAG_EXCLUSIVE_BY_PAGE))
		return make_device_exclusive_range(dmirror->mm, start, end,
						   pages, dmirror);

	for (i = 0; i < npages; i++) {
		struct folio *folio;
		struct page *page;

		page = make_device_exclusive(dmirror->mm, start + i * PAGE_SIZE,
					     dmirror, &folio);
		pages[i] = IS_ERR(page) ? NULL : page;
		if (!IS_ERR(page) || PTR_ERR(page) == -EBUSY)
			continue;
		while (i--) {
			if (!pages[i])
				continue;
			unlock_page(pages[i]);
			put_page(pages[i]);
		}
		return PTR_ERR(page);
	}
	return npages;
}

/*
 * Take exclusive access to one batch and record it in the mirror; the
 * data goes to the bounce buffer. Returns -EBUSY if some page could not
 * be taken.
 *
 * The batch is first faulted in for writing, so that the grab itself has
 * nothing left to fault: any invalidation seen after it then comes from
 * somebody else (an munmap, say) and means the grab must be redone.
 */
static int dmirror_exclusive_batch(struct dmirror *dmirror,
				   unsigned long start, unsigned long end,
				   struct dmirror_work *work,
				   struct hmm_dmirror_cmd *cmd)
{
	unsigned long i, npages = (end - start) >> PAGE_SHIFT;
	int tries, ret;

	for (tries = 0; tries < DMIRROR_MAX_TRIES; tries++) {
		bool stale, missing = false;
		unsigned long seq;

		ret = dmirror_fault(dmirror, start, end, true);
		if (ret)
			return ret;

		seq = mmu_interval_read_begin(&dmirror->notifier);
		mmap_read_lock(dmirror->mm);
		ret = dmirror_exclusive_grab(dmirror, start, end, work->pages);
		mmap_read_unlock(dmirror->mm);
		if (ret < 0)
			return ret;

		mutex_lock(&dmirror->lock);
		stale = mmu_interval_read_retry(&dmirror->notifier, seq);
		for (i = 0; i < npages; i++) {
			struct page *page = i < (unsigned long)ret ?
					    work->pages[i] : NULL;

			if (!page) {
				missing = true;
				continue;
			}
			if (!stale && dmirror_exclusive_record(dmirror, start, i,
							       page, work))
				missing = true;
			unlock_page(page);
			put_page(page);
		}
		mutex_unlock(&dmirror->lock);
		if (!stale)
			return missing ? -EBUSY : 0;
		if (fatal_signal_pending(current))
			return -EINTR;
	}
	return -EBUSY;
}

/* HMM_DMIRROR_EXCLUSIVE: take the range for atomic device access. */
static int dmirror_exclusive(struct dmirror *dmirror,
			     struct hmm_dmirror_cmd *cmd,
			     struct dmirror_work *work)
{
	return dmirror_batches_out(dmirror, cmd, work, dmirror_exclusive_batch);
}

/*
 * HMM_DMIRROR_CHECK_EXCLUSIVE: -EPERM while the device still holds any
 * page of the range exclusively (a CPU access ends it page by page).
 */
static int dmirror_check_exclusive(struct dmirror *dmirror,
				   struct hmm_dmirror_cmd *cmd,
				   struct dmirror_work *work)
{
	unsigned long first = cmd->addr >> PAGE_SHIFT, index;
	void *entry;
	int ret = 0;

	mutex_lock(&dmirror->lock);
	xa_for_each_range(&dmirror->pt, index, entry, first,
			  first + cmd->npages - 1) {
		if (dmirror_pt_test(entry, DMIRROR_PT_EXCL)) {
			ret = -EPERM;
			break;
		}
	}
	mutex_unlock(&dmirror->lock);
	if (!ret)
		cmd->cpages = cmd->npages;
	return ret;
}

/* ------------------------------------------------------------------ */
/* File operations                                                     */
/* ------------------------------------------------------------------ */

static int dmirror_fops_open(struct inode *inode, struct file *filp)
{
	struct dmirror_device *mdevice =
		container_of(inode->i_cdev, struct dmirror_device, cdev);
	struct dmirror *dmirror;
	int ret;

	if (!current->mm)
		return -EINVAL;

	dmirror = kzalloc(sizeof(*dmirror), GFP_KERNEL);
	if (!dmirror)
		return -ENOMEM;
	dmirror->mdevice = mdevice;
	dmirror->mm = current->mm;
	mutex_init(&dmirror->lock);
	xa_init(&dmirror->pt);

	/* The whole address space: the device may look anywhere. */
	ret = mmu_interval_notifier_insert(&dmirror->notifier, current->mm,
					   0, ULONG_MAX & PAGE_MASK,
					   &dmirror_notifier_ops);
	if (ret) {
		kfree(dmirror);
		return ret;
	}
	filp->private_data = dmirror;
	return 0;
}

static int dmirror_fops_release(struct inode *inode, struct file *filp)
{
	struct dmirror *dmirror = filp->private_data;

	/* the flags are the file's: they end with it */
	if (READ_ONCE(dmirror->flags) & HMM_DMIRROR_FLAG_FAIL_ALLOC)
		WRITE_ONCE(dmirror->mdevice->fail_alloc, false);
	mmu_interval_notifier_remove(&dmirror->notifier);
	xa_destroy(&dmirror->pt);
	mutex_destroy(&dmirror->lock);
	kfree(dmirror);
	return 0;
}

/*
 * A range is valid if it is page aligned, not empty, and lies entirely in
 * the user part of the mirrored address space (which also rules out any
 * overflow of addr + npages * PAGE_SIZE).
 */
static int dmirror_check_range(struct dmirror *dmirror,
			       const struct hmm_dmirror_cmd *cmd)
{
	u64 limit = dmirror->mm->task_size;

	if (!cmd->npages || !PAGE_ALIGNED(cmd->addr))
		return -EINVAL;
	if (cmd->addr >= limit ||
	    cmd->npages > ((limit - cmd->addr) >> PAGE_SHIFT))
		return -EINVAL;
	return 0;
}

/* HMM_DMIRROR_STATS: the device's counters, into a hmm_dmirror_stats. */
static int dmirror_stats(struct dmirror *dmirror, void __user *uarg)
{
	struct dmirror_device *mdevice = dmirror->mdevice;
	struct hmm_dmirror_stats st = {
		.faults = atomic64_read(&mdevice->faults),
		.to_device = atomic64_read(&mdevice->to_device),
		.to_system = atomic64_read(&mdevice->to_system),
		.pages_in_use = atomic64_read(&mdevice->pages_in_use),
		.pages_total = atomic64_read(&mdevice->pages_total),
		.evictions = atomic64_read(&mdevice->evictions),
	};
	unsigned int i;

	for (i = 0; i < HMM_DMIRROR_STAT_ORDERS; i++) {
		st.folios_to_device[i] =
			atomic64_read(&mdevice->folios_to_device[i]);
		st.folios_to_system[i] =
			atomic64_read(&mdevice->folios_to_system[i]);
	}
	return copy_to_user(uarg, &st, sizeof(st)) ? -EFAULT : 0;
}

/*
 * HMM_DMIRROR_FLAGS: the flags word comes in cmd->npages.  Unknown bits
 * are refused and change nothing.
 */
static int dmirror_set_flags(struct dmirror *dmirror,
			     struct hmm_dmirror_cmd *cmd,
			     struct dmirror_work *work)
{
	if (cmd->npages & ~HMM_DMIRROR_FLAGS_ALL)
		return -EINVAL;
	WRITE_ONCE(dmirror->flags, cmd->npages);
	/* CPU faults and eviction know the device, not the file */
	WRITE_ONCE(dmirror->mdevice->fail_alloc,
		   !!(cmd->npages & HMM_DMIRROR_FLAG_FAIL_ALLOC));
	return 0;
}

static int dmirror_migrate_to_system(struct dmirror *dmirror,
				     struct hmm_dmirror_cmd *cmd,
				     struct dmirror_work *work)
{
	return dmirror_migrate(dmirror, cmd, work, false);
}

/* What a command needs before it runs (dmirror_ioctl.needs). */
#define DMIRROR_RANGE	BIT(0)	/* cmd.addr/npages are a range to check */
#define DMIRROR_WORK	BIT(1)	/* scratch arrays */
#define DMIRROR_BOUNCE	BIT(2)	/* and a bounce buffer for data */
#define DMIRROR_MM	BIT(3)	/* a reference on the mirrored mm */

/*
 * The commands, their needs and their handlers.  Every handler but
 * STATS's takes a struct hmm_dmirror_cmd, written back on success.
 */
static const struct dmirror_ioctl {
	unsigned int	req;
	unsigned int	needs;
	int		(*run)(struct dmirror *dmirror,
			       struct hmm_dmirror_cmd *cmd,
			       struct dmirror_work *work);
} dmirror_ioctls[] = {
	{ HMM_DMIRROR_READ, DMIRROR_RANGE | DMIRROR_BOUNCE | DMIRROR_MM,
	  dmirror_read },
	{ HMM_DMIRROR_WRITE, DMIRROR_RANGE | DMIRROR_BOUNCE | DMIRROR_MM,
	  dmirror_write },
	{ HMM_DMIRROR_MIGRATE_TO_DEV, DMIRROR_RANGE | DMIRROR_WORK | DMIRROR_MM,
	  dmirror_migrate_to_device },
	{ HMM_DMIRROR_MIGRATE_TO_SYS, DMIRROR_RANGE | DMIRROR_WORK | DMIRROR_MM,
	  dmirror_migrate_to_system },
	{ HMM_DMIRROR_SNAPSHOT, DMIRROR_RANGE | DMIRROR_WORK | DMIRROR_MM,
	  dmirror_snapshot },
	{ HMM_DMIRROR_EXCLUSIVE, DMIRROR_RANGE | DMIRROR_BOUNCE | DMIRROR_MM,
	  dmirror_exclusive },
	{ HMM_DMIRROR_CHECK_EXCLUSIVE, DMIRROR_RANGE,
	  dmirror_check_exclusive },
	{ HMM_DMIRROR_RELEASE, DMIRROR_RANGE | DMIRROR_WORK,
	  dmirror_release_memory },
	{ HMM_DMIRROR_FLAGS, 0, dmirror_set_flags },
	{ HMM_DMIRROR_STATS, 0, NULL },
	{ HMM_DMIRROR_FOLIO_ORDERS, DMIRROR_RANGE | DMIRROR_WORK | DMIRROR_MM,
	  dmirror_folio_orders },
};

static const struct dmirror_ioctl *dmirror_ioctl_find(unsigned int req)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(dmirror_ioctls); i++)
		if (dmirror_ioctls[i].req == req)
			return &dmirror_ioctls[i];
	return NULL;
}

/* Run a command on its validated argument, with what it needs. */
static int dmirror_run(struct dmirror *dmirror, const struct dmirror_ioctl *c,
		       struct hmm_dmirror_cmd *cmd)
{
	struct dmirror_work *work = NULL;
	int ret;

	if (c->needs & (DMIRROR_WORK | DMIRROR_BOUNCE)) {
		work = dmirror_work_alloc(c->needs & DMIRROR_BOUNCE);
		if (!work)
			return -ENOMEM;
	}
	if ((c->needs & DMIRROR_MM) && !mmget_not_zero(dmirror->mm)) {
		ret = -EINVAL;
		goto out;
	}
	ret = c->run(dmirror, cmd, work);
	if (c->needs & DMIRROR_MM)
		mmput(dmirror->mm);
out:
	dmirror_work_free(work);
	return ret;
}

/*
 * Every command reads its whole argument first (EFAULT), then validates
 * the range (EINVAL) before anything happens. On success the argument is
 * written back with cpages and faults filled in.
 */
static long dmirror_fops_unlocked_ioctl(struct file *filp, unsigned int req,
					unsigned long arg)
{
	struct dmirror *dmirror = filp->private_data;
	void __user *uarg = (void __user *)arg;
	const struct dmirror_ioctl *c;
	struct hmm_dmirror_cmd cmd;
	int ret;

	c = dmirror_ioctl_find(req);
	if (!c)
		return -ENOTTY;
	if (!c->run)
		return dmirror_stats(dmirror, uarg);

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	if (c->needs & DMIRROR_RANGE) {
		ret = dmirror_check_range(dmirror, &cmd);
		if (ret)
			return ret;
	}
	cmd.cpages = 0;
	cmd.faults = 0;

	ret = dmirror_run(dmirror, c, &cmd);
	if (ret)
		return ret;
	if (copy_to_user(uarg, &cmd, sizeof(cmd)))
		return -EFAULT;
	return 0;
}

/*
 * mmap() of the device node gives zeroed ordinary pages, inserted now, so
 * that tests have a VM_MIXEDMAP mapping to point the device at.
 */
static int dmirror_fops_mmap(struct file *filp, struct vm_area_struct *vma)
{
	unsigned long addr;

	for (addr = vma->vm_start; addr < vma->vm_end; addr += PAGE_SIZE) {
		struct page *page = alloc_page(GFP_KERNEL | __GFP_ZERO);
		int ret;

		if (!page)
			return -ENOMEM;
		ret = vm_insert_page(vma, addr, page);
		/* On success the page table holds the page now. */
		put_page(page);
		if (ret)
			return ret;
	}
	return 0;
}

static const struct file_operations dmirror_fops = {
	.owner = THIS_MODULE,
	.llseek = default_llseek,
	.open = dmirror_fops_open,
	.mmap = dmirror_fops_mmap,
	.unlocked_ioctl = dmirror_fops_unlocked_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.release = dmirror_fops_release,
};

/* ------------------------------------------------------------------ */
/* Module                                                              */
/* ------------------------------------------------------------------ */

static unsigned long spm_addr_dev0;
module_param(spm_addr_dev0, ulong, 0444);
MODULE_PARM_DESC(spm_addr_dev0,
		 "Physical base of the 256 MiB DEVICE_COHERENT window of /dev/hmm_dmirror2");

static unsigned long spm_addr_dev1;
module_param(spm_addr_dev1, ulong, 0444);
MODULE_PARM_DESC(spm_addr_dev1,
		 "Physical base of the 256 MiB DEVICE_COHERENT window of /dev/hmm_dmirror3");

static void dmirror_device_release(struct device *dev)
{
	kfree(container_of(dev, struct dmirror_device, dev));
}

static int dmirror_unit_create(unsigned int id, unsigned int kind,
			       phys_addr_t window)
{
	struct dmirror_device *mdevice;
	int ret;

	mdevice = kzalloc(sizeof(*mdevice), GFP_KERNEL);
	if (!mdevice)
		return -ENOMEM;
	mdevice->kind = kind;
	mdevice->window = window;
	mdevice->max_chunks = kind == HMM_DMIRROR_MEMORY_DEVICE_PRIVATE ?
		DMIRROR_PRIVATE_CHUNKS : DMIRROR_WINDOW_CHUNKS;
	mutex_init(&mdevice->chunk_lock);
	spin_lock_init(&mdevice->pool_lock);

	/* From here on the device owns the structure. */
	device_initialize(&mdevice->dev);
	mdevice->dev.release = dmirror_device_release;
	mdevice->dev.devt = MKDEV(MAJOR(dmirror_devt), id);
	ret = dev_set_name(&mdevice->dev, "hmm_dmirror%u", id);
	if (ret)
		goto fail;

	cdev_init(&mdevice->cdev, &dmirror_fops);
	mdevice->cdev.owner = THIS_MODULE;
	ret = cdev_device_add(&mdevice->cdev, &mdevice->dev);
	if (ret)
		goto fail;
	dmirror_units[id] = mdevice;
	return 0;

fail:
	put_device(&mdevice->dev);
	return ret;
}

/*
 * Unload: no file can be open (each holds the module), but processes may
 * still map our pages. Move them all home, then unmap the memory.
 */
static void dmirror_unit_destroy(struct dmirror_device *mdevice)
{
	struct dmirror_work *work;
	unsigned int i;

	cdev_device_del(&mdevice->cdev, &mdevice->dev);

	if (mdevice->nr_chunks) {
		work = kzalloc(sizeof(*work), GFP_KERNEL | __GFP_NOFAIL);
		dmirror_evict(mdevice, work, true);
		kfree(work);
	}
	for (i = 0; i < mdevice->nr_chunks; i++) {
		struct dmirror_chunk *chunk = mdevice->chunks[i];

		memunmap_pages(&chunk->pgmap);
		if (chunk->res)
			release_mem_region(chunk->res->start,
					   resource_size(chunk->res));
		dmirror_chunk_free_maps(chunk);
		kfree(chunk);
	}
	mdevice->nr_chunks = 0;
	mdevice->pool = NULL;
	mdevice->pool_free = 0;
	mdevice->nr_large = 0;
	mdevice->large_free = 0;
	mutex_destroy(&mdevice->chunk_lock);
	put_device(&mdevice->dev);
}

static void dmirror_units_destroy(void)
{
	int id;

	for (id = DMIRROR_NR_UNITS - 1; id >= 0; id--) {
		if (dmirror_units[id])
			dmirror_unit_destroy(dmirror_units[id]);
		dmirror_units[id] = NULL;
	}
}

static bool dmirror_window_ok(unsigned long base)
{
	return base && IS_ALIGNED(base, DMIRROR_CHUNK_SIZE) &&
	       base + DMIRROR_WINDOW_SIZE > base;
}

static int __init hmm_dmirror_init(void)
{
	bool coherent = spm_addr_dev0 || spm_addr_dev1;
	unsigned int id;
	int ret;

	if (coherent) {
		if (!dmirror_window_ok(spm_addr_dev0) ||
		    !dmirror_window_ok(spm_addr_dev1) ||
		    (spm_addr_dev0 < spm_addr_dev1 + DMIRROR_WINDOW_SIZE &&
		     spm_addr_dev1 < spm_addr_dev0 + DMIRROR_WINDOW_SIZE)) {
			pr_err("coherent windows must be two disjoint, 64 MiB aligned, 256 MiB ranges\n");
			return -EINVAL;
		}
	}

	ret = alloc_chrdev_region(&dmirror_devt, 0, DMIRROR_NR_UNITS,
				  "HMM_DMIRROR");
	if (ret)
		return ret;

	for (id = 0; id < DMIRROR_NR_UNITS; id++) {
		unsigned int kind = HMM_DMIRROR_MEMORY_DEVICE_PRIVATE;
		phys_addr_t window = 0;

		if (id >= DMIRROR_NR_PRIVATE) {
			if (!coherent)
				break;
			kind = HMM_DMIRROR_MEMORY_DEVICE_COHERENT;
			window = id == DMIRROR_NR_PRIVATE ? spm_addr_dev0 :
							    spm_addr_dev1;
		}
		ret = dmirror_unit_create(id, kind, window);
		if (ret)
			goto fail;
	}
	pr_info("%u devices, coherent memory %s\n",
		coherent ? DMIRROR_NR_UNITS : DMIRROR_NR_PRIVATE,
		coherent ? "enabled" : "not configured");
	return 0;

fail:
	dmirror_units_destroy();
	unregister_chrdev_region(dmirror_devt, DMIRROR_NR_UNITS);
	return ret;
}

static void __exit hmm_dmirror_exit(void)
{
	dmirror_units_destroy();
	unregister_chrdev_region(dmirror_devt, DMIRROR_NR_UNITS);
}

module_init(hmm_dmirror_init);
module_exit(hmm_dmirror_exit);
MODULE_DESCRIPTION("HMM test driver: a simulated device mirroring process memory");
MODULE_LICENSE("GPL");
