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
 * What the pages step did, counted by mdev_pages() as it goes, so that the
 * counters and the step's event cost no second pass over the arrays.
 */
struct mdev_tally {
	unsigned long moved, left, split;
	unsigned long to_dev, to_dev_large, to_ram, to_ram_large;
};

/*
 * @newfolio takes the place of @page (NULL for an empty slot).  It moves
 * "to device" when it is device memory, "to RAM" when @page leaves device
 * memory for system memory.
 */
static inline void mdev_tally_moved(struct mdev_tally *t, struct page *page,
				    struct folio *newfolio)
{
	long nr = folio_nr_pages(newfolio);

	t->moved += nr;
	if (folio_is_zone_device(newfolio)) {
		t->to_dev += nr;
		t->to_dev_large += nr > 1;
	} else if (page && is_zone_device_page(page)) {
		t->to_ram += nr;
		t->to_ram_large += nr > 1;
	}
}

/* @nr pages from @pfn stay where they are in the pages step, for @reason. */
static inline void mdev_tally_left(struct mdev_tally *t, unsigned long pfn,
				   unsigned long nr,
				   enum mdev_left_reason reason)
{
	t->left += nr;
	mdev_left(pfn, nr, reason);
}

/*
 * An empty slot could not take its new page @newpage, for @reason: the
 * folio of the page is counted, at the page's pfn.
 */
static inline void mdev_tally_left_new(struct mdev_tally *t,
				       struct page *newpage,
				       enum mdev_left_reason reason)
{
	mdev_tally_left(t, page_to_pfn(newpage),
			folio_nr_pages(page_folio(newpage)), reason);
}

/*
 * After migrate_vma_pages() (@vma) or migrate_device_pages(): count the
 * pages moving to device memory and back to RAM, and trace the step.
 */
static void mdev_watch_pages(const struct mdev_tally *t, unsigned long npages,
			     bool vma)
{
	if (t->to_dev)
		count_vm_events(HMM_MIGRATE_TO_DEVICE, t->to_dev);
	if (t->to_dev_large)
		count_vm_events(HMM_MIGRATE_TO_DEVICE_LARGE, t->to_dev_large);
	if (t->to_ram)
		count_vm_events(HMM_MIGRATE_TO_RAM, t->to_ram);
	if (t->to_ram_large)
		count_vm_events(HMM_MIGRATE_TO_RAM_LARGE, t->to_ram_large);
	if (vma)
		trace_migrate_vma_pages(npages, t->moved, t->left, t->split);
	else
		trace_migrate_device_pages(npages, t->moved, t->left,
					   t->split);
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
		trace_migrate_vma_finalize(npages, moved, left, 0);
	else
		trace_migrate_device_finalize(npages, moved, left, 0);
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
