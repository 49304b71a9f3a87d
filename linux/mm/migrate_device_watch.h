/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Counting and tracing what device memory migration does: the hmm_migrate_*
 * and hmm_device_folio_split counters of /proc/vmstat and the events of
 * <trace/events/migrate_device.h>.  Only mm/migrate_device.c includes this,
 * after the events; its steps call one helper each where something happens.
 *
 * The counters are per-cpu event counters, always on.  What only an event
 * needs (a count over the arrays, for instance) is done only while the event
 * is enabled, behind its static key.
 */
#ifndef _MM_MIGRATE_DEVICE_WATCH_H
#define _MM_MIGRATE_DEVICE_WATCH_H

#include <linux/build_bug.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/vmstat.h>

static_assert(HMM_MIGRATE_LEFT_GONE - HMM_MIGRATE_LEFT_PINNED + 1 ==
	      MDEV_LEFT_NR);

/* @nr pages from @pfn stay where they are, for @reason. */
static inline void mdev_left(unsigned long pfn, unsigned long nr,
			     enum mdev_left_reason reason)
{
	count_vm_events(HMM_MIGRATE_LEFT_PINNED + reason, nr);
	trace_migrate_device_left(pfn, nr, reason);
}

/* @folio, met whole by a step, stays where it is, for @reason. */
static inline void mdev_left_folio(struct folio *folio,
				   enum mdev_left_reason reason)
{
	mdev_left(folio_pfn(folio), folio_nr_pages(folio), reason);
}

/*
 * The collect walk tried to split a large folio, with result @ret: if that
 * failed, the folio stays whole where it is.
 */
static inline void mdev_left_unsplit(struct folio *folio, int ret)
{
	/* page cache folios are split to be looked at, never selected */
	if (ret && folio_test_anon(folio))
		mdev_left_folio(folio, MDEV_LEFT_SPLIT);
}

/* A device folio of @order at @pfn was split into order-0 folios. */
static inline void mdev_watch_split(unsigned long pfn, unsigned int order)
{
	count_vm_event(HMM_DEVICE_FOLIO_SPLIT);
	trace_migrate_device_split(pfn, order);
}

/*
 * Why did source entry @src (a page) lose MIGRATE_PFN_MIGRATE in the pages
 * step, given its destination @dst?  The checks of mdev_pages(), in its
 * order, looked at again afterwards: both folios are still locked.
 */
static enum mdev_left_reason mdev_pages_reason(unsigned long src,
					       unsigned long dst)
{
	struct folio *folio = page_folio(migrate_pfn_to_page(src));
	struct page *newpage = migrate_pfn_to_page(dst);
	struct folio *newfolio;
	unsigned int order = 0;

	if (!newpage)
		return MDEV_LEFT_NO_DST;
	newfolio = page_folio(newpage);
	if (src & MIGRATE_PFN_COMPOUND) {
		/* answered page by page, and the folio could not be split */
		if (!folio_test_large(newfolio))
			return MDEV_LEFT_SPLIT;
		order = folio_order(folio);
	}
	if (&newfolio->page != newpage || folio_order(newfolio) != order)
		return MDEV_LEFT_BAD_DST;
	if (folio_is_zone_device(newfolio) && folio_test_swapcache(folio))
		return MDEV_LEFT_SWAPCACHE;
	return MDEV_LEFT_PINNED;
}

/*
 * After migrate_vma_pages() (@vma) or migrate_device_pages(): count the
 * pages that will move, by direction, and the pages left behind, by
 * reason, and trace the step.  An entry still marked MIGRATE_PFN_MIGRATE
 * has its destination; a page that lost the mark in this step is still
 * there (steps before clear the entries they drop); an empty slot that
 * lost it while the driver gave it a page could not take that page.
 *
 * A page moves "to device" when its destination is device memory, "to
 * RAM" when it leaves device memory for system memory.
 */
static void mdev_watch_pages(const unsigned long *src, const unsigned long *dst,
			     unsigned long npages, bool vma)
{
	unsigned long to_dev = 0, to_dev_large = 0, to_ram = 0, to_ram_large = 0;
	unsigned long i, moved = 0, left = 0;

	for (i = 0; i < npages; i++) {
		struct page *page = migrate_pfn_to_page(src[i]);
		struct page *newpage = migrate_pfn_to_page(dst[i]);
		unsigned long nr;

		if ((src[i] & MIGRATE_PFN_MIGRATE) && newpage) {
			struct folio *newfolio = page_folio(newpage);

			nr = folio_nr_pages(newfolio);
			moved += nr;
			if (folio_is_zone_device(newfolio)) {
				to_dev += nr;
				to_dev_large += nr > 1;
			} else if (page && is_zone_device_page(page)) {
				to_ram += nr;
				to_ram_large += nr > 1;
			}
		} else if (page) {
			nr = 1;
			if (src[i] & MIGRATE_PFN_COMPOUND)
				nr = folio_nr_pages(page_folio(page));
			mdev_left(page_to_pfn(page), nr,
				  mdev_pages_reason(src[i], dst[i]));
			left += nr;
			/* by virtual range, the entries it covers follow */
			if (vma)
				i += min(nr, npages - i) - 1;
		} else if (vma && newpage && !(src[i] & MIGRATE_PFN_MIGRATE)) {
			struct folio *newfolio = page_folio(newpage);
			unsigned int order = 0;

			if (src[i] & MIGRATE_PFN_COMPOUND)
				order = PMD_SHIFT - PAGE_SHIFT;
			nr = folio_nr_pages(newfolio);
			mdev_left(page_to_pfn(newpage), nr,
				  folio_order(newfolio) == order ?
				  MDEV_LEFT_INSERT : MDEV_LEFT_BAD_DST);
			left += nr;
		}
	}

	if (to_dev)
		count_vm_events(HMM_MIGRATE_TO_DEVICE, to_dev);
	if (to_dev_large)
		count_vm_events(HMM_MIGRATE_TO_DEVICE_LARGE, to_dev_large);
	if (to_ram)
		count_vm_events(HMM_MIGRATE_TO_RAM, to_ram);
	if (to_ram_large)
		count_vm_events(HMM_MIGRATE_TO_RAM_LARGE, to_ram_large);
	if (vma)
		trace_migrate_vma_pages(npages, moved, left);
	else
		trace_migrate_device_pages(npages, moved, left);
}

/*
 * Before migrate_vma_finalize() (@vma) or migrate_device_finalize(), while
 * its event is enabled: trace how many pages go to their destination and
 * how many are mapped back.
 */
static void mdev_watch_finalize(const unsigned long *src,
				const unsigned long *dst, unsigned long npages,
				bool vma)
{
	unsigned long i, moved = 0, left = 0;

	if (vma ? !trace_migrate_vma_finalize_enabled() :
		  !trace_migrate_device_finalize_enabled())
		return;
	for (i = 0; i < npages; i++) {
		struct page *page = migrate_pfn_to_page(src[i]);
		struct page *newpage = migrate_pfn_to_page(dst[i]);

		if ((src[i] & MIGRATE_PFN_MIGRATE) && newpage)
			moved += folio_nr_pages(page_folio(newpage));
		else if (page)
			left += folio_nr_pages(page_folio(page));
	}
	if (vma)
		trace_migrate_vma_finalize(npages, moved, left);
	else
		trace_migrate_device_finalize(npages, moved, left);
}

/*
 * Pages selected by migrate_device_range() or migrate_device_pfns() before
 * they are unmapped, counted only while one of their events is enabled.
 */
static unsigned long mdev_watch_selected(const unsigned long *src,
					 unsigned long npages)
{
	unsigned long i, selected = 0;

	if (!trace_migrate_device_range_enabled() &&
	    !trace_migrate_device_pfns_enabled())
		return 0;
	for (i = 0; i < npages; i++) {
		struct page *page = migrate_pfn_to_page(src[i]);

		if (page)
			selected += folio_nr_pages(page_folio(page));
	}
	return selected;
}

#endif /* _MM_MIGRATE_DEVICE_WATCH_H */
