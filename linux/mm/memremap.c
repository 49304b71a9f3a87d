// SPDX-License-Identifier: GPL-2.0
/*
 * ZONE_DEVICE page maps: struct pages for device and persistent memory.
 * The design is told in the DOC: blocks below, which
 * Documentation/mm/hmm-devmem.rst pulls in.
 */

/**
 * DOC: Design
 *
 * A driver describes its memory in a struct dev_pagemap (one or more
 * physical ranges, a memory type, callbacks) and hands it to
 * memremap_pages().  Each range is hot-added to the ZONE_DEVICE zone of the
 * requested node: DEVICE_PRIVATE ranges only get a memmap (the CPU cannot
 * touch the memory, so no linear mapping is created), all other types also
 * get a kernel linear mapping with the caching the type needs (uncached
 * for PCI BARs, decrypted for DAX).
 */

/**
 * DOC: Finding the map of a pfn
 *
 * Every registered range is an entry of ``pgmap_ranges``, a maple tree in
 * RCU mode indexed by pfn.  Inserting a range into the tree is the first
 * thing done for it, and the insert fails when any pfn of the range is
 * already taken, so overlapping requests (with another map or within the
 * same request) are refused with -EBUSY before anything else happens.
 * Lookups (get_dev_pagemap()) walk the tree under rcu_read_lock() and take
 * a live reference on the map they find, so they fail for a map being torn
 * down; put_dev_pagemap() drops it.  Removals are followed by
 * synchronize_rcu() before the caller may free the structure, so no lookup
 * can still see a map after memunmap_pages() returns.
 */

/**
 * DOC: Life of a map
 *
 * ``pgmap->ref`` is a percpu_ref that keeps the map alive.  It is created
 * dead, so while the ranges are being added nobody (neither
 * get_dev_pagemap() nor zone_device_page_init()) can take a reference.
 * Only when every range is in place is it revived, holding one base
 * reference owned by the map itself.  If a step fails, the ranges added so
 * far are removed in reverse order and the dead reference is simply
 * destroyed: no page and no lookup can have seen the map, and the failed
 * call leaves no memmap, no mapping and no tree entry behind.
 *
 * memunmap_pages() (or the devres action of devm_memremap_pages()) kills
 * the reference, dropping the base reference and failing every later
 * tryget, then sleeps on ``pgmap->done`` until the last holder is gone, and
 * only then removes the ranges.  A driver may therefore free its device
 * memory and its struct dev_pagemap once memunmap_pages() returns.
 */

/**
 * DOC: Life of a page
 *
 * DEVICE_PRIVATE and DEVICE_COHERENT pages belong to the driver's
 * allocator.  They start free, with a page reference count of zero, and
 * the driver decides how they are grouped: zone_device_folio_init() turns
 * 2^order naturally aligned free pages into one folio (order 0 with
 * zone_device_page_init()) with a count of one, locked, and takes one map
 * reference on the driver's behalf.  Whatever folios the pages were part
 * of before does not matter: every page is reset first.  When the folio's
 * count drops to zero again the core mm calls free_zone_device_folio(),
 * which clears the state an ordinary free page would not carry (mapping,
 * anon-exclusive bits, memcg charge), calls ``ops->folio_free()`` (or
 * ``ops->page_free()`` for an order-0 folio of a map that has only that
 * one) exactly once so that the driver can put the folio back in its pool,
 * and drops the map reference.  So a map cannot go away while any of its
 * folios is in use, for example one still mapped into a process.  A freed
 * large folio stays a large folio in the memmap until the driver hands its
 * pages out again.
 *
 * The map pointer of a ZONE_DEVICE page shares its place with the compound
 * head of a tail page, so it is only valid in the head: the page_pgmap()
 * accessor reads it there for any page.
 *
 * FS_DAX, GENERIC and PCI_P2PDMA pages are owned by the map for its whole
 * life and keep a count of at least one: one means idle.  FS_DAX pages
 * never reach zero: the ``devmap_managed_key`` static key, enabled while an
 * FS_DAX map exists, routes their puts to __put_devmap_managed_folio_refs(),
 * which wakes fs/dax.c waiters when a page becomes idle.  If a page of the
 * other two types reaches zero, ``ops->page_free()`` is called (P2PDMA uses
 * it to return the page to its pool) and the count is set back to one.
 * These types do not tie pages to the map reference; their users
 * (device-dax, p2pdma, filesystems) quiesce their pages before unmapping.
 */

/**
 * DOC: Locking
 *
 * memremap_pages() and memunmap_pages() sleep: they take the memory hotplug
 * lock (mem_hotplug_begin() and mem_hotplug_done()) around each range,
 * allocate memory and wait for references.  The caller must hold no
 * spinlocks, and must not itself hold a reference on the map it unmaps.
 * The maple tree serialises its writers with its own lock.
 * get_dev_pagemap() and pgmap_pfn_valid() take no lock and may be called
 * from any context.  free_zone_device_folio() runs in any context the final
 * folio_put() may run in and only calls the driver's free callback and
 * percpu_ref_put(), so that callback must be written with that in mind.
 */

#define pr_fmt(fmt) "memremap: " fmt

#include <linux/device.h>
#include <linux/io.h>
#include <linux/kasan.h>
#include <linux/maple_tree.h>
#include <linux/memory_hotplug.h>
#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/pfn_t.h>
#include <linux/swap.h>
#include <linux/types.h>
#include <linux/wait_bit.h>
#include "internal.h"

/* pfn ranges -> struct dev_pagemap, see "Finding the map of a pfn" above */
static struct maple_tree pgmap_ranges =
	MTREE_INIT(pgmap_ranges, MT_FLAGS_USE_RCU);

#ifndef CONFIG_ARCH_HAS_MEMREMAP_COMPAT_ALIGN
/**
 * memremap_compat_align() - alignment a pmem namespace must keep
 *
 * A namespace may be switched between memremap() (page granular) and
 * memremap_pages() (granular to the hotplug sub-section) modes, so it
 * must be aligned to whatever both accept.  Architectures with a coarser
 * hotplug granularity provide their own version.
 *
 * Return: the alignment in bytes.
 */
unsigned long memremap_compat_align(void)
{
	return PAGES_PER_SUBSECTION << PAGE_SHIFT;
}
EXPORT_SYMBOL_GPL(memremap_compat_align);
#endif

/*
 * devmap_managed_key is enabled while at least one FS_DAX map exists; it
 * makes put_page() and friends hand FS_DAX folios to
 * __put_devmap_managed_folio_refs() instead of counting them down to zero.
 */
#ifdef CONFIG_FS_DAX
static void pgmap_account_managed(struct dev_pagemap *pgmap, bool add)
{
	if (pgmap->type != MEMORY_DEVICE_FS_DAX)
		return;
	if (add)
		static_branch_inc(&devmap_managed_key);
	else
		static_branch_dec(&devmap_managed_key);
}

/**
 * __put_devmap_managed_folio_refs() - drop references of an FS_DAX folio
 * @folio: a ZONE_DEVICE folio
 * @refs: number of references to drop
 *
 * An FS_DAX folio counts from one, one meaning idle.  fs/dax.c sleeps on
 * the reference count until a folio it wants to reclaim is idle, so it is
 * woken whenever a put brings a folio back to one.
 *
 * Context: any context.
 * Return: false if @folio is not FS_DAX (the caller drops the references
 * the ordinary way), true if the references were dropped here.
 */
bool __put_devmap_managed_folio_refs(struct folio *folio, int refs)
{
	bool idle;

	switch (folio->page.pgmap->type) {
	case MEMORY_DEVICE_FS_DAX:
		idle = folio_ref_sub_return(folio, refs) == 1;
		if (idle)
			wake_up_var(&folio->_refcount);
		return true;
	default:
		return false;
	}
}
EXPORT_SYMBOL(__put_devmap_managed_folio_refs);

DEFINE_STATIC_KEY_FALSE(devmap_managed_key);
EXPORT_SYMBOL(devmap_managed_key);
#else
static void pgmap_account_managed(struct dev_pagemap *pgmap, bool add)
{
}
#endif /* CONFIG_FS_DAX */

static bool pgmap_is_private(const struct dev_pagemap *pgmap)
{
	return pgmap->type == MEMORY_DEVICE_PRIVATE;
}

/* Do the pages of this map belong to the driver's allocator? */
static bool pgmap_pages_refcounted(const struct dev_pagemap *pgmap)
{
	return pgmap->type == MEMORY_DEVICE_PRIVATE ||
	       pgmap->type == MEMORY_DEVICE_COHERENT;
}

/*
 * First pfn of range @i whose struct page describes memory rather than
 * the memmap itself: with an altmap the head of range 0 holds the memmap.
 */
static unsigned long pgmap_first_data_pfn(struct dev_pagemap *pgmap, int i)
{
	unsigned long pfn = PHYS_PFN(pgmap->ranges[i].start);

	return i ? pfn : pfn + vmem_altmap_offset(pgmap_altmap(pgmap));
}

/* Index of the range of @pgmap containing @pfn, or -1. */
static int pgmap_range_of(struct dev_pagemap *pgmap, unsigned long pfn)
{
	int i;

	for (i = 0; i < pgmap->nr_range; i++) {
		const struct range *r = &pgmap->ranges[i];

		if (pfn >= PHYS_PFN(r->start) && pfn <= PHYS_PFN(r->end))
			return i;
	}
	return -1;
}

/**
 * pgmap_pfn_valid() - does @pfn have a struct page describing device memory
 * @pgmap: a live page map
 * @pfn: page frame number
 *
 * The caller must hold a reference on @pgmap.
 *
 * Return: true if @pfn lies in one of the ranges of @pgmap and is not part
 * of the memmap storage (altmap) at the start of the first range.
 */
bool pgmap_pfn_valid(struct dev_pagemap *pgmap, unsigned long pfn)
{
	int i = pgmap_range_of(pgmap, pfn);

	return i >= 0 && pfn >= pgmap_first_data_pfn(pgmap, i);
}

/* percpu_ref release callback: the last reference of a killed map is gone */
static void pgmap_ref_released(struct percpu_ref *ref)
{
	struct dev_pagemap *pgmap = container_of(ref, struct dev_pagemap, ref);

	complete(&pgmap->done);
}

/*
 * Check everything that can be checked before touching any state, so
 * that a refused request has nothing to undo.
 */
static int pgmap_check_request(struct dev_pagemap *pgmap, int nid)
{
	const struct dev_pagemap_ops *ops = pgmap->ops;
	int i;

	if (pgmap->nr_range < 1) {
		pr_err("no range to map (nr_range %d)\n", pgmap->nr_range);
		return -EINVAL;
	}
	if (pgmap_altmap(pgmap) && pgmap->nr_range > 1) {
		pr_err("an altmap needs a single range\n");
		return -EINVAL;
	}
	if (nid >= (int)nr_node_ids || (nid >= 0 && !node_possible(nid))) {
		pr_err("invalid node %d\n", nid);
		return -EINVAL;
	}

	switch (pgmap->type) {
	case MEMORY_DEVICE_PRIVATE:
		if (!IS_ENABLED(CONFIG_DEVICE_PRIVATE)) {
			pr_err("DEVICE_PRIVATE support is not built in\n");
			return -EINVAL;
		}
		if (!ops || !ops->migrate_to_ram) {
			pr_err("DEVICE_PRIVATE map without migrate_to_ram\n");
			return -EINVAL;
		}
		if (pgmap_altmap(pgmap)) {
			pr_err("DEVICE_PRIVATE memory cannot hold a memmap\n");
			return -EINVAL;
		}
		fallthrough;
	case MEMORY_DEVICE_COHERENT:
		if (!ops || (!ops->page_free && !ops->folio_free)) {
			pr_err("device memory map without page_free or folio_free\n");
			return -EINVAL;
		}
		if (!pgmap->owner) {
			pr_err("device memory map without owner\n");
			return -EINVAL;
		}
		break;
	case MEMORY_DEVICE_FS_DAX:
		if (IS_ENABLED(CONFIG_FS_DAX_LIMITED)) {
			pr_err("FS_DAX maps are not supported here\n");
			return -EINVAL;
		}
		break;
	case MEMORY_DEVICE_GENERIC:
	case MEMORY_DEVICE_PCI_P2PDMA:
		break;
	default:
		pr_err("invalid memory type %d\n", pgmap->type);
		return -EINVAL;
	}

	for (i = 0; i < pgmap->nr_range; i++) {
		const struct range *r = &pgmap->ranges[i];
		int ram;

		if (r->end < r->start ||
		    !IS_ALIGNED(r->start, SUBSECTION_SIZE) ||
		    !IS_ALIGNED(range_len(r), SUBSECTION_SIZE)) {
			pr_err("range %#llx-%#llx is empty or not %lu aligned\n",
			       r->start, r->end, (unsigned long)SUBSECTION_SIZE);
			return -EINVAL;
		}
		ram = region_intersects(r->start, range_len(r),
					IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE);
		if (ram != REGION_DISJOINT) {
			pr_err("range %#llx-%#llx overlaps System RAM\n",
			       r->start, r->end);
			return -ENXIO;
		}
		if (!mhp_range_allowed(r->start, range_len(r),
				       !pgmap_is_private(pgmap)))
			return -ERANGE;
	}
	return 0;
}

static pgprot_t pgmap_pgprot(const struct dev_pagemap *pgmap)
{
	switch (pgmap->type) {
	case MEMORY_DEVICE_FS_DAX:
		return pgprot_decrypted(PAGE_KERNEL);
	case MEMORY_DEVICE_PCI_P2PDMA:
		return pgprot_noncached(PAGE_KERNEL);
	default:
		return PAGE_KERNEL;
	}
}

/*
 * Give range @i a memmap (and, unless private, a linear mapping) in the
 * ZONE_DEVICE zone of @nid.  On failure everything done here is undone.
 */
static int pgmap_add_range(struct dev_pagemap *pgmap, int i, int nid,
			   struct mhp_params *params)
{
	const struct range *r = &pgmap->ranges[i];
	unsigned long pfn = PHYS_PFN(r->start);
	unsigned long nr_pages = PHYS_PFN(range_len(r));
	struct zone *zone = &NODE_DATA(nid)->node_zones[ZONE_DEVICE];
	int err;

	err = mtree_insert_range(&pgmap_ranges, pfn, pfn + nr_pages - 1,
				 pgmap, GFP_KERNEL);
	if (err == -EEXIST) {
		pr_err("range %#llx-%#llx overlaps another device map\n",
		       r->start, r->end);
		return -EBUSY;
	}
	if (err)
		return err;

	/* may adjust the caching to what the platform already uses */
	err = track_pfn_remap(NULL, &params->pgprot, pfn, 0, range_len(r));
	if (err)
		goto out_erase;

	mem_hotplug_begin();
	if (pgmap_is_private(pgmap)) {
		err = add_pages(nid, pfn, nr_pages, params);
	} else {
		err = kasan_add_zero_shadow(__va(r->start), range_len(r));
		if (!err) {
			err = arch_add_memory(nid, r->start, range_len(r),
					      params);
			if (err)
				kasan_remove_zero_shadow(__va(r->start),
							 range_len(r));
		}
	}
	if (!err)
		move_pfn_range_to_zone(zone, pfn, nr_pages, params->altmap,
				       MIGRATE_MOVABLE);
	mem_hotplug_done();
	if (err)
		goto out_untrack;

	/* the (slow) struct page init does not need the hotplug lock */
	memmap_init_zone_device(zone, pfn, nr_pages, pgmap);
	return 0;

out_untrack:
	untrack_pfn(NULL, pfn, range_len(r), true);
out_erase:
	mtree_erase(&pgmap_ranges, pfn);
	return err;
}

/*
 * Undo pgmap_add_range() for range @i.  No page of the range may be in
 * use.  The caller does synchronize_rcu() before the map may be freed.
 */
static void pgmap_remove_range(struct dev_pagemap *pgmap, int i)
{
	const struct range *r = &pgmap->ranges[i];
	unsigned long pfn = PHYS_PFN(r->start);
	unsigned long nr_pages = PHYS_PFN(range_len(r));
	struct zone *zone;

	/* the altmap head's memmap may never have been initialised */
	zone = page_zone(pfn_to_page(pgmap_first_data_pfn(pgmap, i)));

	mem_hotplug_begin();
	remove_pfn_range_from_zone(zone, pfn, nr_pages);
	if (pgmap_is_private(pgmap)) {
		__remove_pages(pfn, nr_pages, NULL, pgmap);
	} else {
		arch_remove_memory(r->start, range_len(r), pgmap_altmap(pgmap),
				   pgmap);
		kasan_remove_zero_shadow(__va(r->start), range_len(r));
	}
	mem_hotplug_done();

	untrack_pfn(NULL, pfn, range_len(r), true);
	mtree_erase(&pgmap_ranges, pfn);
}

/* Remove ranges [0, @count) of @pgmap, newest first. */
static void pgmap_remove_ranges(struct dev_pagemap *pgmap, int count)
{
	while (count--)
		pgmap_remove_range(pgmap, count);
	/* no lookup may still be looking at @pgmap when we return */
	synchronize_rcu();
}

/**
 * memremap_pages() - give device memory struct pages in ZONE_DEVICE
 * @pgmap: the map to create; type, nr_range and the range(s) must be set,
 *	and ops/owner as the type requires (see &struct dev_pagemap)
 * @nid: node whose ZONE_DEVICE gets the pages, or NUMA_NO_NODE for the
 *	local memory node
 *
 * Hot-adds every range of @pgmap.  DEVICE_PRIVATE ranges only get struct
 * pages; all other types are also mapped into the kernel linear map.  With
 * %PGMAP_ALTMAP_VALID the memmap is carved from @pgmap->altmap.  Undo with
 * memunmap_pages(); prefer devm_memremap_pages() when a device is at hand.
 *
 * Context: process context, may sleep; no locks held.
 * Return: the kernel address of the first range (meaningless for
 * DEVICE_PRIVATE) or an ERR_PTR():
 * %-EINVAL for a malformed request (nr_range < 1, altmap with several
 * ranges or with DEVICE_PRIVATE, unknown type, missing ops->page_free,
 * ops->migrate_to_ram or owner where the type needs them, misaligned or
 * empty range, impossible node);
 * %-ENXIO if a range overlaps System RAM;
 * %-ERANGE if a range lies outside what memory hotplug can address;
 * %-EBUSY if a range overlaps a range already mapped (by any map);
 * %-ENOMEM or another error from memory hotplug.
 * On error nothing of the request is left behind.
 */
void *memremap_pages(struct dev_pagemap *pgmap, int nid)
{
	struct mhp_params params = {
		.altmap = pgmap_altmap(pgmap),
		.pgmap = pgmap,
		.pgprot = pgmap_pgprot(pgmap),
	};
	int err, i;

	err = pgmap_check_request(pgmap, nid);
	if (err)
		return ERR_PTR(err);
	if (nid < 0)
		nid = numa_mem_id();

	/* born dead: no reference can be taken until every range is in */
	init_completion(&pgmap->done);
	err = percpu_ref_init(&pgmap->ref, pgmap_ref_released,
			      PERCPU_REF_INIT_DEAD, GFP_KERNEL);
	if (err)
		return ERR_PTR(err);

	for (i = 0; i < pgmap->nr_range; i++) {
		err = pgmap_add_range(pgmap, i, nid, &params);
		if (err) {
			pgmap_remove_ranges(pgmap, i);
			percpu_ref_exit(&pgmap->ref);
			return ERR_PTR(err);
		}
	}

	pgmap_account_managed(pgmap, true);
	percpu_ref_resurrect(&pgmap->ref);
	return __va(pgmap->ranges[0].start);
}
EXPORT_SYMBOL_GPL(memremap_pages);

/**
 * memunmap_pages() - tear down a map created by memremap_pages()
 * @pgmap: the map
 *
 * Stops new references (get_dev_pagemap() and zone_device_page_init()
 * fail from now on), waits until every page handed out by
 * zone_device_page_init() has been freed and every get_dev_pagemap()
 * reference dropped, then removes the ranges.  When it returns the
 * driver may free @pgmap and the device memory.
 *
 * Context: process context, may sleep for as long as pages are in use.
 * The caller must not itself hold a reference on @pgmap.
 */
void memunmap_pages(struct dev_pagemap *pgmap)
{
	percpu_ref_kill(&pgmap->ref);
	wait_for_completion(&pgmap->done);

	pgmap_remove_ranges(pgmap, pgmap->nr_range);
	percpu_ref_exit(&pgmap->ref);
	pgmap_account_managed(pgmap, false);

	WARN_ONCE(pgmap->altmap.alloc, "memmap pages of the altmap leaked\n");
}
EXPORT_SYMBOL_GPL(memunmap_pages);

static void devm_memremap_pages_release(void *data)
{
	memunmap_pages(data);
}

/**
 * devm_memremap_pages() - memremap_pages() undone when @dev is unbound
 * @dev: the device owning the memory; its node is used
 * @pgmap: the map, as for memremap_pages()
 *
 * Context: process context, may sleep.
 * Return: as memremap_pages(), or %-ENOMEM if the release action cannot
 * be registered (the map is then already torn down again).
 */
void *devm_memremap_pages(struct device *dev, struct dev_pagemap *pgmap)
{
	void *addr;
	int err;

	addr = memremap_pages(pgmap, dev_to_node(dev));
	if (IS_ERR(addr))
		return addr;

	err = devm_add_action_or_reset(dev, devm_memremap_pages_release,
				       pgmap);
	return err ? ERR_PTR(err) : addr;
}
EXPORT_SYMBOL_GPL(devm_memremap_pages);

/**
 * devm_memunmap_pages() - tear down a devm_memremap_pages() map now
 * @dev: the device passed to devm_memremap_pages()
 * @pgmap: the map
 *
 * Runs memunmap_pages() at once instead of at unbind time.
 *
 * Context: process context, may sleep (see memunmap_pages()).
 */
void devm_memunmap_pages(struct device *dev, struct dev_pagemap *pgmap)
{
	devm_release_action(dev, devm_memremap_pages_release, pgmap);
}
EXPORT_SYMBOL_GPL(devm_memunmap_pages);

/* The live map containing @pfn, with a new reference, or NULL. */
static struct dev_pagemap *pgmap_find_live(unsigned long pfn)
{
	struct dev_pagemap *found;

	guard(rcu)();
	found = mtree_load(&pgmap_ranges, pfn);
	if (!found || !percpu_ref_tryget_live_rcu(&found->ref))
		return NULL;
	return found;
}

/**
 * get_dev_pagemap() - find the page map of @pfn and take a reference on it
 * @pfn: page frame number
 * @pgmap: a map the caller already holds a reference on, or NULL
 *
 * If @pgmap covers @pfn it is returned without taking another reference;
 * otherwise its reference is dropped and the map of @pfn is looked up.
 * Drop the returned reference with put_dev_pagemap().
 *
 * Context: any context; does not sleep.
 * Return: the live map containing @pfn, or NULL if there is none or it is
 * being torn down.
 */
struct dev_pagemap *get_dev_pagemap(unsigned long pfn,
				    struct dev_pagemap *pgmap)
{
	if (!pgmap)
		return pgmap_find_live(pfn);
	if (pgmap_range_of(pgmap, pfn) < 0) {
		put_dev_pagemap(pgmap);
		return pgmap_find_live(pfn);
	}
	return pgmap;
}
EXPORT_SYMBOL_GPL(get_dev_pagemap);

/**
 * free_zone_device_folio() - a ZONE_DEVICE folio's count dropped to zero
 * @folio: the folio
 *
 * Called by the core mm (folio_put() and friends) instead of freeing the
 * folio to the page allocator.  See "Life of a page" above.
 *
 * Context: any context the final folio_put() may happen in.
 */
void free_zone_device_folio(struct folio *folio)
{
	struct dev_pagemap *pgmap = page_pgmap(&folio->page);
	const struct dev_pagemap_ops *ops = pgmap->ops;
	long i, nr = folio_nr_pages(folio);

	if (WARN_ON_ONCE(!ops || (!ops->page_free && !ops->folio_free)))
		return;
	/* a large folio can only be handed back to a folio_free() */
	if (WARN_ON_ONCE(nr > 1 && !ops->folio_free))
		return;

	mem_cgroup_uncharge(folio);

	/*
	 * An anonymous folio may still carry PG_anon_exclusive on any of its
	 * pages, which a free page must not (the bit means something else to
	 * a page that is not anonymous).  Nobody else holds the folio now, so
	 * non-atomic clears are fine.
	 */
	if (folio_test_anon(folio)) {
		for (i = 0; i < nr; i++)
			__clear_bit(PG_anon_exclusive,
				    &folio_page(folio, i)->flags);
		/* counted when it became anonymous, as the allocator does */
		mod_mthp_stat(folio_order(folio), MTHP_STAT_NR_ANON, -1);
	}
	/* a stale mapping (possibly with PAGE_MAPPING_ANON) must not survive */
	folio->mapping = NULL;

	if (ops->folio_free)
		ops->folio_free(folio);
	else
		ops->page_free(&folio->page);

	if (pgmap_pages_refcounted(pgmap))
		put_dev_pagemap(pgmap);
	else
		folio_set_count(folio, 1);
}

/*
 * Make the @nr pages from @page free-standing order-0 pages of @pgmap
 * again, whatever folios they belonged to before: a page that was a tail
 * keeps its compound head where its map pointer belongs, a page that was
 * a head keeps PG_head, and the second page of a large folio keeps flags
 * of the folio.  All page flags go but PG_reserved, which every ZONE_DEVICE
 * page has from the start, as the page allocator clears them before it
 * hands a page out.  All the pages are free (count zero).
 */
static void zone_device_pages_reset(struct page *page, unsigned long nr,
				    struct dev_pagemap *pgmap)
{
	unsigned long i;

	for (i = 0; i < nr; i++, page++) {
		VM_WARN_ON_ONCE_PAGE(page_ref_count(page), page);
		page->pgmap = pgmap;		/* clears any compound head */
		page->zone_device_data = NULL;
		page->mapping = NULL;
		page->private = 0;
		atomic_set(&page->_mapcount, -1);
		page->flags &= ~(PAGE_FLAGS_CHECK_AT_PREP & ~BIT(PG_reserved));
	}
}

/**
 * zone_device_folio_init() - hand a free device folio of any order to its
 *	driver
 * @folio: the first page of 2^@order free pages of @pgmap, naturally
 *	aligned (its pfn a multiple of 2^@order)
 * @pgmap: the DEVICE_PRIVATE or DEVICE_COHERENT map the pages belong to
 * @order: order of the folio to make; above zero only for maps whose ops
 *	provide folio_free()
 *
 * The pages may have been part of other folios, of other orders, before
 * they were freed; they become one folio of @order with a reference
 * count of one, locked, and the map is pinned until the folio is freed
 * again (one map reference per folio, whatever its order).  Large folios
 * are ready for anonymous mappings, like those of the page allocator.
 *
 * Calling this on a map being torn down by memunmap_pages() is a driver
 * bug and warns; so does a misaligned folio or an order without
 * folio_free(), in which case nothing is done.
 *
 * Context: process context (may sleep on the folio lock).
 */
void zone_device_folio_init(struct folio *folio, struct dev_pagemap *pgmap,
			    unsigned int order)
{
	struct page *page = &folio->page;
	bool live;

	if (WARN_ON_ONCE(!IS_ALIGNED(page_to_pfn(page), 1UL << order) ||
			 order > MAX_PAGE_ORDER ||
			 (order && !pgmap->ops->folio_free)))
		return;

	zone_device_pages_reset(page, 1UL << order, pgmap);
	if (order) {
		prep_compound_page(page, order);
		folio_set_large_rmappable(folio);
	}

	/* a dying map must not hand out pages; keep its books balanced */
	live = percpu_ref_tryget_live(&pgmap->ref);
	if (WARN_ON_ONCE(!live))
		percpu_ref_get(&pgmap->ref);

	folio_set_count(folio, 1);
	folio_lock(folio);
}
EXPORT_SYMBOL_GPL(zone_device_folio_init);

/*
 * The map of a device page that may have been a tail page: the map
 * pointer of a tail holds its compound head instead, so look the pfn up.
 */
static struct dev_pagemap *zone_device_page_map(struct page *page)
{
	if (!PageTail(page))
		return page->pgmap;
	return mtree_load(&pgmap_ranges, page_to_pfn(page));
}

/**
 * zone_device_page_init() - hand a free device page to its driver
 * @page: a free page of a DEVICE_PRIVATE or DEVICE_COHERENT map
 *
 * zone_device_folio_init() for an order-0 folio: gives @page a reference
 * count of one, locks it and pins its map until the page is freed again.
 * The page may have been part of a large folio before.
 *
 * Context: process context (may sleep on the page lock).
 */
void zone_device_page_init(struct page *page)
{
	/* the page itself becomes the folio, even if it was a tail */
	zone_device_folio_init((struct folio *)page,
			       zone_device_page_map(page), 0);
}
EXPORT_SYMBOL_GPL(zone_device_page_init);

#ifdef CONFIG_MEMREMAP_KUNIT_TEST
#include "tests/memremap-kunit.h"
#endif
