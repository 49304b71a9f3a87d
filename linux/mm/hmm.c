// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hmm_range_fault(): describe a range of a process page table to a device.
 *
 * How it works
 * ------------
 * The range is walked with the generic page walker (mm/pagewalk.c) under
 * the caller's mmap read lock.  A callback sees one page-table entry (or a
 * hole) at a time and turns it into a "CPU state" word: 0 when nothing
 * usable is mapped, HMM_PFN_ERROR when the address can never be mirrored,
 * or a pfn with HMM_PFN_VALID, perhaps HMM_PFN_WRITE and the order of the
 * mapping.  For each page the state is compared with what the caller asked
 * for; a satisfied page gets the state as its result.
 *
 * A page whose request is not satisfied needs a fault, and a walk callback
 * is the wrong place for one: page-table locks are held and the walker is
 * half way down a table.  So the callback only notes the run of
 * consecutive pages that need a fault and stops the walk with
 * HMM_WALK_FAULT.  hmm_range_fault() then faults that run in through
 * handle_mm_fault(), the path a CPU access takes, and walks again from the
 * first page of the run; the results of the pages before it stand.  A
 * page that is fine as it stands is never faulted, which matters for
 * DEVICE_PRIVATE pages of the caller: a fault would bring them back to
 * system memory.
 *
 * Nothing is pinned and no reference is taken.  Whether the results are
 * still true is the business of the caller's mmu_interval_notifier: the
 * sequence is checked before every walk (-EBUSY when it moved) and the
 * caller checks it again, under the lock its invalidate callback takes,
 * before it programs the device.
 */
#include <linux/dma-mapping.h>
#include <linux/hmm.h>
#include <linux/hmm-dma.h>
#include <linux/huge_mm.h>
#include <linux/hugetlb.h>
#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/pagewalk.h>
#include <linux/scatterlist.h>
#include <linux/sched/signal.h>
#include <linux/swapops.h>
#include <linux/vmstat.h>

#define CREATE_TRACE_POINTS
#include <trace/events/hmm.h>

#define HMM_PFN_REQ_FLAGS	(HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE)

/* Positive walk result: [fault_start, fault_end) must be faulted in. */
#define HMM_WALK_FAULT		1

/**
 * struct hmm_walker - state of one hmm_range_fault() call
 * @range: the caller's range; results go to @range->hmm_pfns
 * @may_fault: some page of the range may ask for a fault; when false every
 *	state is reported as it is and the request flags are never looked at
 * @fault_start: first page of the run to fault, set with HMM_WALK_FAULT
 * @fault_end: end of that run
 * @faulted: pages faulted in so far (handle_mm_fault() calls)
 * @restarts: walks started again after a run was faulted in
 */
struct hmm_walker {
	struct hmm_range	*range;
	bool			may_fault;
	unsigned long		fault_start;
	unsigned long		fault_end;
	unsigned long		faulted;
	unsigned int		restarts;
};

static unsigned long *hmm_slot(const struct hmm_range *range,
			       unsigned long addr)
{
	return &range->hmm_pfns[(addr - range->start) >> PAGE_SHIFT];
}

/*
 * Store the result @state of one page.  The driver's sticky bits (its DMA
 * state, see <linux/hmm-dma.h>) are carried over from what the slot held.
 */
static void hmm_store(unsigned long *slot, unsigned long state)
{
	*slot = (*slot & HMM_PFN_INOUT_FLAGS) | state;
}

/*
 * The request of one page: @in is its entry before the result overwrites
 * it.  A write request without a fault request asks for nothing.
 */
static unsigned long hmm_request(const struct hmm_range *range,
				 unsigned long in)
{
	unsigned long req = range->default_flags | (in & range->pfn_flags_mask);

	if (!(req & HMM_PFN_REQ_FAULT))
		return 0;
	return req & HMM_PFN_REQ_FLAGS;
}

/* Does the CPU state @state leave the request @req unsatisfied? */
static bool hmm_needs_fault(unsigned long req, unsigned long state)
{
	if (!(req & HMM_PFN_REQ_FAULT))
		return false;
	if (!(state & HMM_PFN_VALID))
		return true;
	return (req & HMM_PFN_REQ_WRITE) && !(state & HMM_PFN_WRITE);
}

static bool hmm_page_needs_fault(const struct hmm_walker *w,
				 unsigned long addr, unsigned long state)
{
	if (!w->may_fault)
		return false;
	return hmm_needs_fault(hmm_request(w->range, *hmm_slot(w->range, addr)),
			       state);
}

/*
 * [addr, end) cannot be mirrored: report an error for each page, or fail
 * the call if one of them asks for a fault.
 */
static int hmm_report_error(struct hmm_walker *w, unsigned long addr,
			    unsigned long end)
{
	unsigned long *slot = hmm_slot(w->range, addr);

	for (; addr < end; addr += PAGE_SIZE, slot++) {
		if (w->may_fault && hmm_request(w->range, *slot))
			return -EFAULT;
		hmm_store(slot, HMM_PFN_ERROR);
	}
	return 0;
}

/*
 * [addr, end) all have the CPU state @state; when it is valid the first page
 * is @pfn and the others follow it.  Report each page until one needs a
 * fault, then note the run of pages that need one and stop the walk.
 */
static int hmm_report(struct hmm_walker *w, unsigned long addr,
		      unsigned long end, unsigned long state, unsigned long pfn)
{
	unsigned long *slot = hmm_slot(w->range, addr);

	for (; addr < end; addr += PAGE_SIZE, slot++) {
		if (hmm_page_needs_fault(w, addr, state)) {
			w->fault_start = addr;
			do {
				addr += PAGE_SIZE;
			} while (addr < end && hmm_page_needs_fault(w, addr, state));
			w->fault_end = addr;
			return HMM_WALK_FAULT;
		}
		hmm_store(slot, (state & HMM_PFN_VALID) ? state | pfn++ : state);
	}
	return 0;
}

static unsigned long hmm_order_bits(unsigned int order)
{
	return (unsigned long)order << HMM_PFN_ORDER_SHIFT;
}

/*
 * CPU state of a leaf entry that maps 2^@order pages at once (a THP, DAX or
 * hugetlb mapping) starting at @leaf_pfn; *@pfn gets the pfn of the page
 * at @addr.  An entry that is not @usable is reported as not mapped.
 */
static unsigned long hmm_leaf_state(bool usable, bool writable,
				    unsigned int order, unsigned long leaf_pfn,
				    unsigned long addr, unsigned long *pfn)
{
	if (!usable)
		return 0;
	*pfn = leaf_pfn + ((addr >> PAGE_SHIFT) & ((1UL << order) - 1));
	return HMM_PFN_VALID | (writable ? HMM_PFN_WRITE : 0) |
	       hmm_order_bits(order);
}

/* CPU state of one PTE (of a PTE table, not a hugetlb entry). */
static unsigned long hmm_pte_state(const struct hmm_range *range, pte_t pte)
{
	unsigned long pfn;

	if (pte_none(pte))
		return 0;

	if (!pte_present(pte)) {
		swp_entry_t entry = pte_to_swp_entry(pte);

		/*
		 * The caller's own device memory is mirrored where it is;
		 * anybody else's is "not present" and a fault migrates it
		 * back to system memory.
		 */
		if (is_device_private_entry(entry)) {
			struct page *page = pfn_swap_entry_to_page(entry);

			if (!range->dev_private_owner ||
			    page_pgmap(page)->owner != range->dev_private_owner)
				return 0;
			return swp_offset_pfn(entry) | HMM_PFN_VALID |
			       (is_writable_device_private_entry(entry) ?
				HMM_PFN_WRITE : 0);
		}
		if (is_hwpoison_entry(entry) || is_poisoned_swp_entry(entry))
			return HMM_PFN_ERROR;
		/*
		 * Swap, migration and device-exclusive entries, markers: the
		 * page is not mapped now, and a fault is the way to get it.
		 */
		return 0;
	}

	/* NUMA hinting: mapped, but the CPU itself would fault first */
	if (pte_protnone(pte))
		return 0;

	pfn = pte_pfn(pte);
	/* a special pfn has no struct page, unless it is DAX or the zero page */
	if (pte_special(pte) && !pte_devmap(pte) && !is_zero_pfn(pfn))
		return HMM_PFN_ERROR;
	return pfn | HMM_PFN_VALID | (pte_write(pte) ? HMM_PFN_WRITE : 0);
}

/*
 * HMM_PFN_REQ_FOLIO_ORDER: @state, the state of the PTE at @addr (@ptep),
 * maps the first page of a large folio.  If the folio's other pages follow
 * in order, under the same rights, inside [@addr, @end) and need no fault,
 * return the folio's order, else 0.  The table lock is held, so the folio
 * cannot be freed or split under us.
 */
static unsigned int hmm_pte_folio_order(struct hmm_walker *w, pte_t *ptep,
					unsigned long addr, unsigned long end,
					unsigned long state)
{
	const struct hmm_range *range = w->range;
	struct folio *folio;
	unsigned long i, nr;

	if (!(range->default_flags & HMM_PFN_REQ_FOLIO_ORDER) ||
	    !(state & HMM_PFN_VALID))
		return 0;
	folio = page_folio(hmm_pfn_to_page(state));
	nr = folio_nr_pages(folio);
	if (nr == 1 || &folio->page != hmm_pfn_to_page(state) ||
	    !IS_ALIGNED(addr, nr << PAGE_SHIFT) ||
	    end - addr < nr << PAGE_SHIFT)
		return 0;
	for (i = 0; i < nr; i++) {
		if (hmm_pte_state(range, ptep_get(ptep + i)) != state + i ||
		    hmm_page_needs_fault(w, addr + (i << PAGE_SHIFT), state + i))
			return 0;
	}
	return folio_order(folio);
}

/* Report the PTEs of [addr, end) from @ptep on; the table lock is held. */
static int hmm_scan_ptes(struct hmm_walker *w, pte_t *ptep,
			 unsigned long addr, unsigned long end)
{
	const struct hmm_range *range = w->range;
	unsigned long *slot = hmm_slot(range, addr);
	int ret = 0;

	for (; addr < end; addr += PAGE_SIZE, ptep++, slot++) {
		unsigned long state = hmm_pte_state(range, ptep_get(ptep));
		bool fault = state != HMM_PFN_ERROR &&
			     hmm_page_needs_fault(w, addr, state);
		unsigned int order;

		if (ret == HMM_WALK_FAULT) {
			/* inside a run: extend it while pages need a fault */
			if (!fault)
				break;
			w->fault_end = addr + PAGE_SIZE;
			continue;
		}
		if (state == HMM_PFN_ERROR && w->may_fault &&
		    hmm_request(range, *slot))
			return -EFAULT;
		if (fault) {
			w->fault_start = addr;
			w->fault_end = addr + PAGE_SIZE;
			ret = HMM_WALK_FAULT;
			continue;
		}
		order = hmm_pte_folio_order(w, ptep, addr, end, state);
		if (order) {
			unsigned long i, nr = 1UL << order;

			for (i = 0; i < nr; i++)
				hmm_store(slot + i, (state + i) |
					  hmm_order_bits(order));
			addr += (nr - 1) << PAGE_SHIFT;
			ptep += nr - 1;
			slot += nr - 1;
			continue;
		}
		hmm_store(slot, state);
	}
	return ret;
}

/*
 * Map and lock the PTE table under @pmdp and report it.  Mapped, the table
 * stays readable under RCU even if a collapse replaces it meanwhile;
 * pte_offset_map_lock() checks the PMD still points to it once locked.
 */
static int hmm_walk_pte_table(struct hmm_walker *w, pmd_t *pmdp,
			      unsigned long addr, unsigned long end,
			      struct mm_walk *walk)
{
	spinlock_t *ptl;	/* of the PTE table */
	pte_t *table;
	int ret;

	table = pte_offset_map_lock(walk->mm, pmdp, addr, &ptl);
	if (!table) {
		/* the table went away under us: look at the PMD again */
		walk->action = ACTION_AGAIN;
		return 0;
	}
	ret = hmm_scan_ptes(w, table, addr, end);
	pte_unmap_unlock(table, ptl);
	return ret;
}

/*
 * Whether @pmd is itself the leaf (a THP, a DAX PMD or a PMD-sized
 * migration entry) rather than a pointer to a PTE table.
 */
static bool hmm_pmd_is_leaf(pmd_t pmd)
{
	return is_swap_pmd(pmd) || pmd_trans_huge(pmd) || pmd_devmap(pmd);
}

/*
 * CPU state of the page at @addr of a PMD leaf: a THP, DAX, or a whole
 * device folio.  As for ptes, the caller's own device-private memory is
 * mirrored where it is, anybody else's reads as not mapped (a fault brings
 * it back); so does a migration entry (a fault waits for it).
 */
static unsigned long hmm_pmd_state(const struct hmm_range *range, pmd_t pmd,
				   unsigned long addr, unsigned long *pfn)
{
	unsigned int order = PMD_SHIFT - PAGE_SHIFT;

	if (is_pmd_device_private_entry(pmd)) {
		swp_entry_t entry = pmd_to_swp_entry(pmd);
		struct page *page = pfn_swap_entry_to_page(entry);

		return hmm_leaf_state(range->dev_private_owner &&
				      page_pgmap(page)->owner ==
				      range->dev_private_owner,
				      is_writable_device_private_entry(entry),
				      order, swp_offset_pfn(entry), addr, pfn);
	}
	return hmm_leaf_state(pmd_present(pmd) && !pmd_protnone(pmd),
			      pmd_write(pmd), order, pmd_pfn(pmd), addr, pfn);
}

/* The entry locked by @ptl changed since it was first read: look again. */
static int hmm_walk_again(struct mm_walk *walk, spinlock_t *ptl)
	__releases(ptl)
{
	spin_unlock(ptl);
	walk->action = ACTION_AGAIN;
	return 0;
}

/* Report a leaf entry read under @ptl, then drop the lock. */
static int hmm_report_unlock(struct hmm_walker *w, spinlock_t *ptl,
			     unsigned long addr, unsigned long end,
			     unsigned long state, unsigned long pfn)
	__releases(ptl)
{
	int ret = hmm_report(w, addr, end, state, pfn);

	spin_unlock(ptl);
	return ret;
}

static int hmm_walk_pmd(pmd_t *pmdp, unsigned long addr, unsigned long end,
			struct mm_walk *walk)
{
	struct hmm_walker *w = walk->private;
	unsigned long state, pfn = 0;
	spinlock_t *ptl;	/* of the entry being read */
	pmd_t pmd;

	pmd = pmdp_get_lockless(pmdp);
	if (pmd_none(pmd))
		return hmm_report(w, addr, end, 0, 0);
	if (!hmm_pmd_is_leaf(pmd))
		return hmm_walk_pte_table(w, pmdp, addr, end, walk);

	ptl = pmd_lock(walk->mm, pmdp);
	pmd = pmdp_get(pmdp);
	if (!hmm_pmd_is_leaf(pmd))
		return hmm_walk_again(walk, ptl);	/* split or freed */
	state = hmm_pmd_state(w->range, pmd, addr, &pfn);
	return hmm_report_unlock(w, ptl, addr, end, state, pfn);
}

#ifdef CONFIG_HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD
/* A PUD leaf outside hugetlb: DAX memory mapped 1 GiB at a time. */
static int hmm_walk_pud(pud_t *pudp, unsigned long addr, unsigned long end,
			struct mm_walk *walk)
{
	unsigned long state, pfn = 0;
	spinlock_t *ptl;	/* of the entry being read */
	pud_t pud;

	if (!pud_leaf(pudp_get(pudp)))
		return 0;	/* a PMD table: descend */

	ptl = pud_lock(walk->mm, pudp);
	pud = pudp_get(pudp);
	if (!pud_leaf(pud))
		return hmm_walk_again(walk, ptl);
	state = hmm_leaf_state(pud_present(pud), pud_write(pud),
			       PUD_SHIFT - PAGE_SHIFT, pud_pfn(pud), addr,
			       &pfn);
	walk->action = ACTION_CONTINUE;	/* never let the walker split it */
	return hmm_report_unlock(walk->private, ptl, addr, end, state, pfn);
}
#else
#define hmm_walk_pud NULL
#endif

/*
 * No page table below @addr.  Inside a VMA that is an unpopulated range a
 * fault fills; outside any VMA (walk->vma is NULL) nothing can be mirrored.
 */
static int hmm_walk_hole(unsigned long addr, unsigned long end, int depth,
			 struct mm_walk *walk)
{
	struct hmm_walker *w = walk->private;

	if (!walk->vma)
		return hmm_report_error(w, addr, end);
	return hmm_report(w, addr, end, 0, 0);
}

#ifdef CONFIG_HUGETLB_PAGE
static int hmm_walk_hugetlb(pte_t *ptep, unsigned long hmask,
			    unsigned long addr, unsigned long end,
			    struct mm_walk *walk)
{
	struct hstate *h = hstate_vma(walk->vma);
	unsigned long state, pfn = 0;
	spinlock_t *ptl;	/* of the entry being read */
	bool mapped, poisoned;
	pte_t pte;
	int ret;

	ptl = huge_pte_lock(h, walk->mm, ptep);
	pte = huge_ptep_get(walk->mm, addr, ptep);
	mapped = !huge_pte_none(pte) && pte_present(pte);
	poisoned = !huge_pte_none(pte) && !mapped &&
		   is_hwpoison_entry(pte_to_swp_entry(pte));
	state = hmm_leaf_state(mapped, huge_pte_write(pte),
			       huge_page_order(h), pte_pfn(pte), addr, &pfn);
	if (poisoned)
		ret = hmm_report_error(walk->private, addr, end);
	else
		ret = hmm_report(walk->private, addr, end, state, pfn);
	spin_unlock(ptl);
	return ret;
}
#else
#define hmm_walk_hugetlb NULL
#endif

/*
 * Whole VMAs a device cannot mirror: I/O and raw pfn mappings (no struct
 * pages to hand out) and mappings the process may not even read.
 */
static int hmm_walk_vma(unsigned long start, unsigned long end,
			struct mm_walk *walk)
{
	struct vm_area_struct *vma = walk->vma;
	int ret;

	if (!(vma->vm_flags & (VM_IO | VM_PFNMAP)) &&
	    (vma->vm_flags & VM_READ))
		return 0;

	ret = hmm_report_error(walk->private, start, end);
	return ret ? ret : 1;	/* 1: skip this VMA, go on with the next */
}

/*
 * The walker asks hmm_walk_vma() about each VMA, then reports holes and
 * leaves; the PTE level is read by hmm_walk_pmd() itself, under one lock
 * per table.
 */
static const struct mm_walk_ops hmm_walk_ops = {
	.test_walk = hmm_walk_vma, .pte_hole = hmm_walk_hole,
	.pud_entry = hmm_walk_pud, .pmd_entry = hmm_walk_pmd,
	.hugetlb_entry = hmm_walk_hugetlb,
	.walk_lock = PGWALK_RDLOCK,	/* our caller holds the mmap lock */
};

/*
 * Fault in the run the walk stopped at, page by page, as the CPU would.
 * The walk stays inside one VMA per callback, so the run does too.  The
 * mmap lock is never dropped (no FAULT_FLAG_ALLOW_RETRY), so the VMA stays.
 */
static int hmm_fault_run(struct hmm_walker *w)
{
	struct hmm_range *range = w->range;
	struct vm_area_struct *vma;
	unsigned long addr;

	vma = vma_lookup(range->notifier->mm, w->fault_start);
	if (!vma)
		return -EFAULT;

	for (addr = w->fault_start; addr < w->fault_end; addr += PAGE_SIZE) {
		unsigned long req = hmm_request(range, *hmm_slot(range, addr));
		unsigned int flags = FAULT_FLAG_REMOTE;
		vm_fault_t fault;

		if (req & HMM_PFN_REQ_WRITE) {
			if (!(vma->vm_flags & VM_WRITE))
				return -EPERM;
			flags |= FAULT_FLAG_WRITE;
		}
		fault = handle_mm_fault(vma, addr, flags, NULL);
		w->faulted++;
		if (fault & VM_FAULT_OOM)
			return -ENOMEM;
		if (fault & VM_FAULT_ERROR)
			return -EFAULT;
	}
	return 0;
}

/*
 * The work of hmm_range_fault(): walk, fault the run the walk stopped at,
 * walk again from there, until the walk gets to the end or fails.
 */
static int hmm_walk_range(struct hmm_walker *w)
{
	struct hmm_range *range = w->range;
	unsigned long next = range->start, before;
	int ret;

	for (;;) {
		if (mmu_interval_check_retry(range->notifier,
					     range->notifier_seq))
			return -EBUSY;
		ret = walk_page_range(range->notifier->mm, next, range->end,
				      &hmm_walk_ops, w);
		if (ret != HMM_WALK_FAULT)
			return ret;
		if (fatal_signal_pending(current))
			return -EINTR;
		before = w->faulted;
		ret = hmm_fault_run(w);
		trace_hmm_range_fault_run(w->fault_start, w->fault_end,
					  w->faulted - before, ret);
		if (ret)
			return ret;
		next = w->fault_start;
		w->restarts++;
	}
}

/**
 * hmm_range_fault() - mirror a virtual range, faulting pages in on request
 * @range: the range, its notifier and sequence, and the result array
 *
 * Fills @range->hmm_pfns with one entry per page of [@range->start,
 * @range->end), see &enum hmm_pfn_flags.  Pages whose request (from
 * @range->default_flags and @range->pfn_flags_mask) the CPU page table does
 * not satisfy are faulted in through the ordinary page-fault path first:
 * swapped out or never touched pages, pages under migration, copy-on-write
 * pages wanted for writing, device-exclusive entries, and DEVICE_PRIVATE
 * pages of another owner (which their driver migrates back to system
 * memory).  DEVICE_PRIVATE pages whose pgmap owner is
 * @range->dev_private_owner are reported where they are.  Without any
 * fault request nothing is faulted and a page that is not mapped reads as
 * 0.  Huge mappings (THP, hugetlb, DAX) report their order in every entry.
 *
 * The range may span several VMAs and holes between them.
 *
 * The caller must hold the mmap lock of @range->notifier->mm for reading
 * and must have sampled @range->notifier_seq with mmu_interval_read_begin().
 * The entries are only valid while mmu_interval_read_retry() says the
 * sequence has not moved; check it under the driver's own lock before
 * using them.
 *
 * Return: 0 when every entry is filled, or
 * -EINVAL if the range is empty or not page aligned;
 * -EBUSY if an invalidation of the range ran since @range->notifier_seq
 * was sampled (sample it again and retry);
 * -EFAULT if a page that asked for a fault lies outside any VMA, in a VMA
 * that cannot be mirrored (no read permission, VM_IO, VM_PFNMAP), on a
 * special pfn or poisoned memory, or its fault failed;
 * -EPERM if a page asked for write access in a VMA without write permission;
 * -ENOMEM if a fault ran out of memory;
 * -EINTR if a fatal signal is pending.
 * On error the entries may be partly filled and must not be used.
 */
int hmm_range_fault(struct hmm_range *range)
{
	struct hmm_walker w = {
		.range		= range,
		.may_fault	= (range->default_flags |
				   range->pfn_flags_mask) & HMM_PFN_REQ_FAULT,
	};
	int ret;

	if (!PAGE_ALIGNED(range->start) || !PAGE_ALIGNED(range->end) ||
	    range->start >= range->end)
		return -EINVAL;
	mmap_assert_locked(range->notifier->mm);

	count_vm_event(HMM_RANGE_FAULT);
	trace_hmm_range_fault_start(range);
	ret = hmm_walk_range(&w);
	if (w.faulted)
		count_vm_events(HMM_RANGE_FAULT_PAGES, w.faulted);
	if (ret == -EBUSY)
		count_vm_event(HMM_RANGE_FAULT_BUSY);
	trace_hmm_range_fault_end(range, ret, w.faulted, w.restarts);
	return ret;
}
EXPORT_SYMBOL(hmm_range_fault);

/*
 * DMA mapping of mirrored pages (<linux/hmm-dma.h>).
 *
 * The DMA state of entry i is in map->pfn_list[i] itself: the sticky bits
 * say whether it is mapped and how, map->dma_list[i] holds the address.
 * Mapping an entry that is already mapped returns the address it has, so
 * a driver can map a whole range again after hmm_range_fault() and only
 * the new entries cost anything.
 */

/*
 * The device sees the pages themselves, so no mapping may bounce through
 * swiotlb or need cache maintenance around each access: a mirrored page
 * changes under the device without any DMA sync call.
 */
static bool hmm_dma_device_ok(struct device *dev)
{
#ifdef CONFIG_DMA_NEED_SYNC
	if (!dev->dma_skip_sync)
		return false;
#endif
	return !dma_addressing_limited(dev);
}

/**
 * hmm_dma_map_alloc() - allocate the arrays of a DMA-mapped mirror
 * @dev: the device that will access the pages
 * @map: the map to set up
 * @nr_entries: number of entries (pages of the range)
 * @dma_entry_size: bytes each entry maps, a power of two of at least
 *	PAGE_SIZE
 *
 * Allocates map->pfn_list, which the driver passes to hmm_range_fault() as
 * hmm_range.hmm_pfns, and the array of DMA addresses.
 *
 * Context: may sleep.
 * Return: 0; -EINVAL for no entries or a bad entry size; -EOPNOTSUPP if
 * @dev cannot map pages directly (it needs DMA syncs, or its addressing
 * is limited so that mappings would bounce); -ENOMEM.
 */
int hmm_dma_map_alloc(struct device *dev, struct hmm_dma_map *map,
		      size_t nr_entries, size_t dma_entry_size)
{
	if (!nr_entries || dma_entry_size < PAGE_SIZE ||
	    !is_power_of_2(dma_entry_size))
		return -EINVAL;
	if (!hmm_dma_device_ok(dev))
		return -EOPNOTSUPP;

	map->dma_entry_size = dma_entry_size;
	map->pfn_list = kvcalloc(nr_entries, sizeof(*map->pfn_list),
				 GFP_KERNEL | __GFP_NOWARN);
	map->dma_list = kvcalloc(nr_entries, sizeof(*map->dma_list),
				 GFP_KERNEL | __GFP_NOWARN);
	if (map->pfn_list && map->dma_list)
		return 0;
	hmm_dma_map_free(dev, map);
	return -ENOMEM;
}
EXPORT_SYMBOL_GPL(hmm_dma_map_alloc);

/**
 * hmm_dma_map_free() - free the arrays of a DMA-mapped mirror
 * @dev: the device the map was allocated for
 * @map: the map; its entries must have been unmapped
 *
 * Context: may sleep.
 */
void hmm_dma_map_free(struct device *dev, struct hmm_dma_map *map)
{
	kvfree(map->pfn_list);
	kvfree(map->dma_list);
	map->pfn_list = NULL;
	map->dma_list = NULL;
}
EXPORT_SYMBOL_GPL(hmm_dma_map_free);

/*
 * A peer-to-peer page: how may @dev reach it?  Returns the address for a
 * bus-address mapping (nothing else to do), 0 to go on with an ordinary
 * mapping through the host bridge, or DMA_MAPPING_ERROR.
 */
static dma_addr_t hmm_dma_map_p2p(struct device *dev, struct page *page,
				  size_t size, unsigned long *entry,
				  struct pci_p2pdma_map_state *state)
{
	struct scatterlist sg;

	if (!state)
		return DMA_MAPPING_ERROR;
	sg_init_table(&sg, 1);
	sg_set_page(&sg, page, size, 0);
	switch (pci_p2pdma_map_segment(state, dev, &sg)) {
	case PCI_P2PDMA_MAP_BUS_ADDR:
		*entry |= HMM_PFN_P2PDMA_BUS;
		return sg.dma_address;
	case PCI_P2PDMA_MAP_THRU_HOST_BRIDGE:
		*entry |= HMM_PFN_P2PDMA;
		return 0;
	default:
		return DMA_MAPPING_ERROR;
	}
}

/**
 * hmm_dma_map_pfn() - DMA-map one entry of a mirrored range
 * @dev: the device that will access the page
 * @map: the map, whose pfn_list entry @idx hmm_range_fault() made valid
 * @idx: the entry
 * @p2pdma_state: state kept across calls for peer-to-peer pages (zeroed by
 *	the caller before the first); may be NULL if the range cannot hold
 *	any, and a peer-to-peer page then fails to map
 *
 * Maps map->dma_entry_size bytes from the entry's page for bidirectional
 * DMA and marks the entry %HMM_PFN_DMA_MAPPED.  A peer-to-peer page behind
 * the same PCI switch gets its bus address (%HMM_PFN_P2PDMA_BUS), one
 * through the host bridge an ordinary mapping (%HMM_PFN_P2PDMA).  An entry
 * that is already mapped keeps its mapping and its address is returned.
 *
 * Return: the DMA address, or %DMA_MAPPING_ERROR if the entry is not
 * valid, the page cannot be reached by @dev or the mapping failed.
 */
dma_addr_t hmm_dma_map_pfn(struct device *dev, struct hmm_dma_map *map,
			   size_t idx,
			   struct pci_p2pdma_map_state *p2pdma_state)
{
	unsigned long *entry = &map->pfn_list[idx];
	unsigned long attrs = 0;
	struct page *page;
	dma_addr_t addr;

	if (!(*entry & HMM_PFN_VALID))
		return DMA_MAPPING_ERROR;
	if (*entry & HMM_PFN_DMA_MAPPED)
		return map->dma_list[idx];

	page = hmm_pfn_to_page(*entry);
	if (is_pci_p2pdma_page(page)) {
		addr = hmm_dma_map_p2p(dev, page, map->dma_entry_size, entry,
				       p2pdma_state);
		if (addr == DMA_MAPPING_ERROR)
			return addr;
		if (*entry & HMM_PFN_P2PDMA_BUS)
			goto mapped;
		attrs |= DMA_ATTR_SKIP_CPU_SYNC;
	}
	addr = dma_map_page_attrs(dev, page, 0, map->dma_entry_size,
				  DMA_BIDIRECTIONAL, attrs);
	if (dma_mapping_error(dev, addr)) {
		*entry &= ~HMM_PFN_INOUT_FLAGS;
		return DMA_MAPPING_ERROR;
	}
mapped:
	map->dma_list[idx] = addr;
	*entry |= HMM_PFN_DMA_MAPPED;
	return addr;
}
EXPORT_SYMBOL_GPL(hmm_dma_map_pfn);

/**
 * hmm_dma_unmap_pfn() - undo hmm_dma_map_pfn() for one entry
 * @dev: the device the entry was mapped for
 * @map: the map
 * @idx: the entry
 *
 * Unmaps the entry if it is mapped, whatever hmm_range_fault() reported
 * for it since, and clears its sticky bits.  A bus-address mapping has
 * nothing to unmap.
 *
 * Return: true if the entry was mapped, false if there was nothing to do.
 */
bool hmm_dma_unmap_pfn(struct device *dev, struct hmm_dma_map *map,
		       size_t idx)
{
	unsigned long *entry = &map->pfn_list[idx];

	if (!(*entry & HMM_PFN_DMA_MAPPED))
		return false;
	if (!(*entry & HMM_PFN_P2PDMA_BUS))
		dma_unmap_page_attrs(dev, map->dma_list[idx],
				     map->dma_entry_size, DMA_BIDIRECTIONAL,
				     (*entry & HMM_PFN_P2PDMA) ?
				     DMA_ATTR_SKIP_CPU_SYNC : 0);
	*entry &= ~HMM_PFN_INOUT_FLAGS;
	return true;
}
EXPORT_SYMBOL_GPL(hmm_dma_unmap_pfn);

#ifdef CONFIG_HMM_KUNIT_TEST
#include "tests/hmm-kunit.h"
#endif
