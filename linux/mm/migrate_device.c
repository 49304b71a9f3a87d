// SPDX-License-Identifier: GPL-2.0
/*
 * Moving process memory to and from device memory.
 *
 * A device driver that owns ZONE_DEVICE memory (DEVICE_PRIVATE memory the
 * CPU cannot address, or DEVICE_COHERENT memory it can) moves pages of a
 * process with three calls, doing the copy itself in between:
 *
 *   migrate_vma_setup()    pick the pages of a range and take them away from
 *                          the CPU page tables (they are left locked, with a
 *                          migration entry in every place they were mapped);
 *   (driver)               allocate a destination for each selected page,
 *                          copy the data with its DMA engine, fill ->dst;
 *   migrate_vma_pages()    hand each page's identity (anon_vma, index, memcg,
 *                          flags) over to its destination;
 *   migrate_vma_finalize() point the migration entries at the new pages, or
 *                          back at the old ones for pages that did not move,
 *                          then unlock and release everything.
 *
 * The migrate_device_*() trio does the same from a pfn range of device
 * memory instead of a virtual range, for drivers that must empty their
 * memory (unbind, device memory pressure).
 *
 * The entries of the src and dst arrays are "migrate pfns": a pfn shifted by
 * MIGRATE_PFN_SHIFT, plus MIGRATE_PFN_VALID when there is a page,
 * MIGRATE_PFN_MIGRATE while the entry is still on its way, and
 * MIGRATE_PFN_WRITE when the mapping was writable.  An entry with MIGRATE but
 * no VALID bit is an empty slot of an anonymous mapping (pte_none() or the
 * zero page) that the driver may fill with a new page.
 *
 * Life of a selected source page:
 *  1. the page-table walk finds it, takes a reference and locks it with a
 *     trylock (nothing here ever sleeps on a page lock while holding another
 *     one, so migrations cannot deadlock each other), and replaces its pte
 *     with a migration entry on the spot, under the page table lock that the
 *     walk holds anyway;
 *  2. system pages are taken off the LRU, the isolation reference replacing
 *     the walk's one;
 *  3. try_to_migrate() replaces the mappings the walk could not see (other
 *     processes after fork(), or every mapping when we start from a pfn)
 *     with migration entries too;
 *  4. if it is still mapped, or somebody else holds a reference (a GUP pin
 *     for instance), the mappings are restored at once and the entry is
 *     dropped from the migration;
 *  5. migrate_vma_pages() moves the page's identity to the destination, and
 *     finalize either frees the source or puts it back where it was.
 *
 * Only order-0 pages move: a PMD-mapped transparent huge page met by the walk
 * is split first.  The helpers below deal with one folio per array entry and
 * never assume order 0 beyond that, so that moving a whole THP to a compound
 * device folio can later be one more case in the walk and in
 * mdev_move_identity() rather than a rewrite.
 */
#include <linux/mm.h>
#include <linux/export.h>
#include <linux/huge_mm.h>
#include <linux/memcontrol.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mm_inline.h>
#include <linux/mmu_notifier.h>
#include <linux/oom.h>
#include <linux/pagewalk.h>
#include <linux/rmap.h>
#include <linux/swap.h>
#include <linux/swapops.h>
#include <linux/userfaultfd_k.h>
#include <asm/tlbflush.h>
#include "internal.h"

/* Index of @addr in the arrays of @migrate. */
static unsigned long mvma_index(const struct migrate_vma *migrate,
				unsigned long addr)
{
	return (addr - migrate->start) >> PAGE_SHIFT;
}

/*
 * Can an empty slot of this range be filled with a new page?  Only in a
 * private anonymous mapping, where an empty pte reads as zeroes, and only
 * when the caller asked for system memory (an empty slot is the system
 * memory the process has not touched yet).
 */
static bool mvma_holes_migrate(const struct migrate_vma *migrate,
			       struct vm_area_struct *vma)
{
	return vma_is_anonymous(vma) &&
	       (migrate->flags & MIGRATE_VMA_SELECT_SYSTEM);
}

/* Record [start, end) as empty slots, or as not migrating. */
static void mvma_fill(struct migrate_vma *migrate, unsigned long start,
		      unsigned long end, bool hole)
{
	unsigned long addr;

	for (addr = start; addr < end; addr += PAGE_SIZE) {
		migrate->src[mvma_index(migrate, addr)] =
			hole ? MIGRATE_PFN_MIGRATE : 0;
		if (hole)
			migrate->cpages++;
	}
}

static int mvma_collect_hole(unsigned long start, unsigned long end,
			     __always_unused int depth, struct mm_walk *walk)
{
	struct migrate_vma *migrate = walk->private;

	mvma_fill(migrate, start, end, mvma_holes_migrate(migrate, walk->vma));
	return 0;
}

/* Does the caller want to move a page owned by @pgmap? */
static bool mvma_wants_device(const struct migrate_vma *migrate,
			      struct dev_pagemap *pgmap, unsigned long select)
{
	return (migrate->flags & select) && pgmap->owner == migrate->pgmap_owner;
}

/*
 * Decide about one page table entry.  Returns the migrate pfn to record;
 * when it has MIGRATE_PFN_VALID set, a reference was taken on the folio.
 * A large folio is not recorded: it is returned in @large (referenced) so
 * that the caller can split it and look at the entry again.
 */
static unsigned long mvma_collect_one(struct migrate_vma *migrate,
				      struct vm_area_struct *vma,
				      unsigned long addr, pte_t pte,
				      struct folio *skip, struct folio **large)
{
	unsigned long mpfn;
	struct folio *folio;
	struct page *page;

	if (pte_none(pte))
		goto empty;

	if (!pte_present(pte)) {
		swp_entry_t entry = pte_to_swp_entry(pte);

		/* Swap, migration and device-exclusive entries stay put. */
		if (!is_device_private_entry(entry))
			return 0;
		page = pfn_swap_entry_to_page(entry);
		if (!mvma_wants_device(migrate, page_pgmap(page),
				       MIGRATE_VMA_SELECT_DEVICE_PRIVATE))
			return 0;
		mpfn = migrate_pfn(page_to_pfn(page)) | MIGRATE_PFN_MIGRATE;
		if (is_writable_device_private_entry(entry))
			mpfn |= MIGRATE_PFN_WRITE;
		folio_get(page_folio(page));
		return mpfn;
	}

	if (is_zero_pfn(pte_pfn(pte)))
		goto empty;

	page = vm_normal_page(vma, addr, pte);
	if (!page)
		return 0;
	if (is_zone_device_page(page)) {
		if (!is_device_coherent_page(page) ||
		    !mvma_wants_device(migrate, page_pgmap(page),
				       MIGRATE_VMA_SELECT_DEVICE_COHERENT))
			return 0;
	} else if (!(migrate->flags & MIGRATE_VMA_SELECT_SYSTEM)) {
		return 0;
	}

	folio = page_folio(page);
	if (folio_test_large(folio)) {
		if (folio != skip) {
			folio_get(folio);
			*large = folio;
		}
		return 0;
	}
	/*
	 * Page cache and KSM pages are shared beyond this mapping and have
	 * no place in device memory: only anonymous pages are selected.
	 */
	if (!folio_test_anon(folio) || folio_test_ksm(folio))
		return 0;

	mpfn = migrate_pfn(page_to_pfn(page)) | MIGRATE_PFN_MIGRATE;
	if (pte_write(pte))
		mpfn |= MIGRATE_PFN_WRITE;
	folio_get(folio);
	return mpfn;

empty:
	return mvma_holes_migrate(migrate, vma) ? MIGRATE_PFN_MIGRATE : 0;
}

/*
 * Replace the pte at @addr, which maps @page (locked and referenced by us),
 * with a migration entry, as try_to_migrate() would but without an rmap
 * walk, since the walk already holds the page table lock.  The entry keeps
 * what the pte knew: writable or not, exclusive to this mapping, young,
 * dirty, soft-dirty and uffd-wp bits.  Returns false and leaves the pte as
 * it was if the page may be pinned (its exclusivity cannot be given up).
 * The caller flushes the TLB before dropping the lock.
 */
static bool mvma_set_migration_entry(struct vm_area_struct *vma,
				     unsigned long addr, pte_t *ptep,
				     struct page *page)
{
	struct folio *folio = page_folio(page);
	struct mm_struct *mm = vma->vm_mm;
	bool exclusive = folio_test_anon(folio) && PageAnonExclusive(page);
	bool writable, young = false, dirty = false, soft_dirty, uffd_wp;
	unsigned long pfn = page_to_pfn(page);
	struct anon_vma *anon_vma;
	swp_entry_t entry;
	pte_t old, pte;

	old = ptep_get_and_clear(mm, addr, ptep);
	if (exclusive && folio_try_share_anon_rmap_pte(folio, page)) {
		set_pte_at(mm, addr, ptep, old);
		return false;
	}

	if (pte_present(old)) {
		writable = pte_write(old);
		young = pte_young(old);
		dirty = pte_dirty(old);
		soft_dirty = pte_soft_dirty(old);
		uffd_wp = pte_uffd_wp(old);
		if (dirty)
			folio_mark_dirty(folio);
	} else {
		/* A device-private entry. */
		writable = is_writable_device_private_entry(pte_to_swp_entry(old));
		soft_dirty = pte_swp_soft_dirty(old);
		uffd_wp = pte_swp_uffd_wp(old);
	}

	if (writable)
		entry = make_writable_migration_entry(pfn);
	else if (exclusive)
		entry = make_readable_exclusive_migration_entry(pfn);
	else
		entry = make_readable_migration_entry(pfn);
	if (young)
		entry = make_migration_entry_young(entry);
	if (dirty)
		entry = make_migration_entry_dirty(entry);
	pte = swp_entry_to_pte(entry);
	if (soft_dirty)
		pte = pte_swp_mksoft_dirty(pte);
	if (uffd_wp)
		pte = pte_swp_mkuffd_wp(pte);
	set_pte_at(mm, addr, ptep, pte);

	/*
	 * The mapping's reference goes; ours stays until finalize, and so
	 * does one on the anon_vma (see mdev_unmap()), which this
	 * VMA keeps alive while we hold the mmap lock.
	 */
	anon_vma = folio_anon_vma(folio);
	if (anon_vma)
		get_anon_vma(anon_vma);
	folio_remove_rmap_pte(folio, page, vma);
	folio_put(folio);
	return true;
}

/*
 * Walk the ptes of [addr, end) under the page table lock, recording each
 * entry and unmapping on the spot every selected page that can be locked
 * without waiting (a page somebody else has locked is left alone).  Returns
 * where it stopped: @end, or earlier when it met a large folio (@large is
 * then set) or could not map the page table (the pmd changed under us).
 */
static unsigned long mvma_collect_ptes(struct migrate_vma *migrate,
				       struct mm_walk *walk, pmd_t *pmdp,
				       unsigned long addr, unsigned long end,
				       struct folio *skip,
				       struct folio **large)
{
	struct vm_area_struct *vma = walk->vma;
	unsigned long first = addr;
	pmd_t pmdval = pmdp_get_lockless(pmdp);
	pte_t *start_pte, *ptep;
	spinlock_t *ptl;	/* of the page table */
	bool flush = false;

	/*
	 * pte_offset_map_lock() spelled out (map, lock, check the PMD still
	 * holds this table): its annotation in <linux/mm.h> tells sparse of
	 * the table lock but not of the RCU read lock the map holds until
	 * pte_unmap(), so with it every unlock below would look unbalanced.
	 */
	start_pte = pte_offset_map_nolock(walk->mm, pmdp, addr, &ptl);
	if (!start_pte)
		return addr;
	__acquire(RCU);		/* taken by the map, dropped by pte_unmap() */
	spin_lock(ptl);
	if (!pmd_same(pmdval, pmdp_get_lockless(pmdp))) {
		pte_unmap_unlock(start_pte, ptl);
		return addr;
	}
	arch_enter_lazy_mmu_mode();

	for (ptep = start_pte; addr < end; addr += PAGE_SIZE, ptep++) {
		pte_t pte = ptep_get(ptep);
		struct page *page;
		unsigned long mpfn;

		mpfn = mvma_collect_one(migrate, vma, addr, pte, skip, large);
		if (*large)
			break;

		page = migrate_pfn_to_page(mpfn);
		if (page) {
			struct folio *folio = page_folio(page);

			if (!folio_trylock(folio)) {
				folio_put(folio);
				mpfn = 0;
			} else if (!mvma_set_migration_entry(vma, addr, ptep,
							     page)) {
				folio_unlock(folio);
				folio_put(folio);
				mpfn = 0;
			} else if (pte_present(pte)) {
				flush = true;
			}
		}

		migrate->src[mvma_index(migrate, addr)] = mpfn;
		if (mpfn & MIGRATE_PFN_MIGRATE)
			migrate->cpages++;
	}

	arch_leave_lazy_mmu_mode();
	if (flush)
		flush_tlb_range(vma, first, addr);
	pte_unmap_unlock(start_pte, ptl);
	if (vma->vm_flags & VM_LOCKED)
		mlock_drain_local();
	return addr;
}

/*
 * Split @folio (referenced by the caller, reference dropped here) into
 * order-0 pages.  Returns 0 on success.
 */
static int mvma_split(struct folio *folio)
{
	int ret = -EBUSY;

	if (folio_trylock(folio)) {
		ret = split_folio(folio);
		folio_unlock(folio);
	}
	folio_put(folio);
	return ret;
}

/*
 * A PMD maps a huge page at @addr.  Turn it into a page table the pte loop
 * can handle: split the folio itself when system memory is selected (so its
 * pages can move one by one), otherwise or if that fails split only the
 * mapping.  Returns false when the rest of the range is to be skipped.
 */
static bool mvma_collect_huge_pmd(struct migrate_vma *migrate,
				  struct mm_walk *walk, pmd_t *pmdp,
				  unsigned long addr, struct folio **skip)
{
	struct vm_area_struct *vma = walk->vma;
	struct folio *folio;
	spinlock_t *ptl;	/* of the pmd */
	pmd_t pmd;

	ptl = pmd_lock(walk->mm, pmdp);
	pmd = pmdp_get(pmdp);
	if (!pmd_trans_huge(pmd)) {
		/* Changed under us: let the caller look again. */
		spin_unlock(ptl);
		return true;
	}
	if (is_huge_zero_pmd(pmd)) {
		spin_unlock(ptl);
		split_huge_pmd(vma, pmdp, addr);
		return true;
	}
	if (!(migrate->flags & MIGRATE_VMA_SELECT_SYSTEM)) {
		spin_unlock(ptl);
		return false;
	}
	folio = pmd_folio(pmd);
	folio_get(folio);
	spin_unlock(ptl);

	if (mvma_split(folio)) {
		/*
		 * Pinned or busy: keep the folio whole, map it with ptes and
		 * let the pte loop pass over its pages.
		 */
		*skip = folio;
		split_huge_pmd(vma, pmdp, addr);
	}
	return true;
}

static int mvma_collect_pmd(pmd_t *pmdp, unsigned long start,
			    unsigned long end, struct mm_walk *walk)
{
	struct migrate_vma *migrate = walk->private;
	struct folio *skip = NULL;
	unsigned long addr = start;

	while (addr < end) {
		struct folio *large = NULL;
		pmd_t pmd = pmdp_get_lockless(pmdp);

		if (pmd_none(pmd)) {
			mvma_fill(migrate, addr, end,
				  mvma_holes_migrate(migrate, walk->vma));
			break;
		}
		if (pmd_trans_huge(pmd)) {
			if (mvma_collect_huge_pmd(migrate, walk, pmdp, addr,
						  &skip))
				continue;
			mvma_fill(migrate, addr, end, false);
			break;
		}
		/*
		 * Anything else that is not a page table, a huge page under
		 * migration for instance, is left alone: waiting for it here,
		 * with pages of the range already locked, could deadlock.
		 */
		if (!pmd_present(pmd) || pmd_leaf(pmd)) {
			mvma_fill(migrate, addr, end, false);
			break;
		}

		addr = mvma_collect_ptes(migrate, walk, pmdp, addr, end, skip,
					 &large);
		if (large && mvma_split(large))
			skip = large;
	}
	return 0;
}

/*
 * Fill the src array for the whole range.  Secondary MMUs are told first
 * that the range is being migrated; a device whose pages are the ones moving
 * recognises its own pgmap_owner and can ignore it, as it drives the move.
 */
static void mvma_collect(struct migrate_vma *migrate)
{
	static const struct mm_walk_ops ops = {
		.walk_lock	= PGWALK_RDLOCK,
		.pte_hole	= mvma_collect_hole,
		.pmd_entry	= mvma_collect_pmd,
	};
	struct mm_struct *mm = migrate->vma->vm_mm;
	unsigned long start = migrate->start, end = migrate->end;
	struct mmu_notifier_range notify;

	mmu_notifier_range_init_owner(&notify, MMU_NOTIFY_MIGRATE, 0, mm,
				      start, end, migrate->pgmap_owner);
	mmu_notifier_invalidate_range_start(&notify);
	walk_page_range(mm, start, end, &ops, migrate);
	mmu_notifier_invalidate_range_end(&notify);
}

/*
 * Is our reference (plus the one the fault path holds on @fault_page) the
 * only one besides those the page tables, page cache and swap cache
 * account for?  Anything else, a GUP pin for instance, means somebody may
 * be using the page behind our back and it must not move.
 */
static bool mdev_refs_ok(struct folio *folio, bool fault_page)
{
	return folio_ref_count(folio) ==
	       folio_expected_ref_count(folio) + 1 + fault_page;
}

/*
 * mdev_refs_ok(), except that a reference a per-CPU LRU batch
 * holds is not taken for a pin.  Such a batch (activation, rotation at the
 * end of a write) may hold a folio that still looks on the LRU, and an idle
 * CPU keeps it until something drains it: so before refusing a system
 * folio, drain every CPU, once per call (@drained), and count again.
 */
static bool mdev_unpinned(struct folio *folio, bool fault_page,
			  bool *drained)
{
	if (mdev_refs_ok(folio, fault_page))
		return true;
	if (folio_is_zone_device(folio) || *drained)
		return false;
	lru_add_drain_all();
	*drained = true;
	return mdev_refs_ok(folio, fault_page);
}

/*
 * Unlock and release a source folio whose migration entries are gone: an
 * isolated system folio that stays goes back to the LRU (@to_lru), any
 * other just loses our reference (one that moved is freed by it).  The
 * reference on the anon_vma taken at unmap time goes last, as it kept the
 * rmap walk that removed the migration entries safe.
 */
static void mdev_release_src(struct folio *folio, bool to_lru)
{
	struct anon_vma *anon_vma = folio_anon_vma(folio);

	folio_unlock(folio);
	if (to_lru)
		folio_putback_lru(folio);
	else
		folio_put(folio);
	if (anon_vma)
		put_anon_vma(anon_vma);
}

/* Map a source folio back where it was, let it go, clear its entry. */
static void mdev_restore(unsigned long *mpfn, struct folio *folio,
			 bool isolated)
{
	remove_migration_ptes(folio, folio, 0);
	mdev_release_src(folio, isolated);
	*mpfn = 0;
}

/*
 * Unmap the locked, referenced pages of @src_pfns, leaving migration entries
 * (steps 2 to 4 in the comment at the top).  Entries that cannot move are
 * restored, unlocked, released and cleared.  Returns how many entries are
 * still migrating, empty slots included.
 *
 * Every anonymous source keeps a reference on its anon_vma until finalize:
 * once the last mapping is a migration entry nothing else keeps the anon_vma
 * alive if the processes exit meanwhile, and the entries are found through
 * it.  The collect walk already took it (@walked); the pfn-based callers,
 * which hold no mmap lock, take it here while the folio is still mapped.
 */
static unsigned long mdev_unmap(unsigned long *src_pfns,
				unsigned long npages,
				struct page *fault_page,
				bool walked)
{
	unsigned long i, moving = 0;
	bool drained = false;

	lru_add_drain();	/* this CPU's batches: pages faulted in just now */
	for (i = 0; i < npages; i++) {
		struct folio *folio;
		struct page *page;

		if (!(src_pfns[i] & MIGRATE_PFN_VALID)) {
			/* an empty slot: the driver may still fill it */
			moving += !!(src_pfns[i] & MIGRATE_PFN_MIGRATE);
			continue;
		}
		page = migrate_pfn_to_page(src_pfns[i]);
		folio = page_folio(page);

		if (!walked && folio_test_anon(folio) &&
		    !folio_get_anon_vma(folio)) {
			/* Not mapped anywhere any more: nothing to move. */
			folio_unlock(folio);
			folio_put(folio);
			src_pfns[i] = 0;
			continue;
		}

		if (!folio_is_zone_device(folio)) {
			/* A folio fresh from a fault may sit in a per-cpu batch. */
			if (!folio_test_lru(folio) && !drained) {
				lru_add_drain_all();
				drained = true;
			}
			if (!folio_isolate_lru(folio)) {
				mdev_restore(&src_pfns[i], folio,
					     false);
				continue;
			}
			/* The isolation reference is ours from now on. */
			folio_put(folio);
			/*
			 * A swap write still in flight keeps the folio in the
			 * swap cache, which device memory cannot join
			 * (mdev_move_identity()).  It ends without any lock
			 * we hold, and none starts while we hold the folio
			 * lock; the page stays mapped meanwhile.
			 */
			if (folio_test_swapcache(folio))
				folio_wait_writeback(folio);
		}

		if (folio_mapped(folio))
			try_to_migrate(folio, 0);

		if (folio_mapped(folio) ||
		    !mdev_unpinned(folio, page == fault_page,
				   &drained)) {
			mdev_restore(&src_pfns[i], folio,
				     !folio_is_zone_device(folio));
			continue;
		}
		moving++;
	}
	return moving;
}

/*
 * The checks migrate_vma_setup() makes before touching anything.  They only
 * look at the structure and the VMA's own fields.
 */
static int mvma_check_args(const struct migrate_vma *args)
{
	struct vm_area_struct *vma = args->vma;

	if (!vma || !args->src || !args->dst)
		return -EINVAL;
	if (!PAGE_ALIGNED(args->start) || !PAGE_ALIGNED(args->end))
		return -EINVAL;
	if (args->end <= args->start)
		return -EINVAL;
	if (args->start < vma->vm_start || args->end > vma->vm_end)
		return -EINVAL;
	/* hugetlb and DAX have their own page handling; PFN maps no pages. */
	if (is_vm_hugetlb_page(vma) || (vma->vm_flags & VM_SPECIAL) ||
	    vma_is_dax(vma))
		return -EINVAL;
	if (args->fault_page && !is_device_private_page(args->fault_page))
		return -EINVAL;
	return 0;
}

/**
 * migrate_vma_setup() - select and unmap the pages of a range for migration
 * @args: the range, the arrays and what to select
 *
 * The caller fills @args->vma, @args->start and @args->end (page aligned, a
 * non-empty range inside the VMA), @args->src and @args->dst (arrays of one
 * unsigned long per page of the range), @args->flags (which kinds of memory
 * to select: MIGRATE_VMA_SELECT_SYSTEM, _DEVICE_PRIVATE, _DEVICE_COHERENT)
 * and @args->pgmap_owner (device pages are only selected if their
 * pgmap->owner matches; secondary MMUs also see it in the MMU_NOTIFY_MIGRATE
 * notification).  A migrate_to_ram() handler also sets @args->fault_page to
 * the page of the fault, whose extra reference is then expected.
 *
 * On return each src entry tells the caller what to do:
 *  - MIGRATE_PFN_MIGRATE with a valid pfn: the page is locked and unmapped
 *    (migration entries stand in its place); copy it to a new page;
 *  - MIGRATE_PFN_MIGRATE without a pfn: an empty slot of a private
 *    anonymous mapping (nothing there yet, or the zero page), only reported
 *    when system memory is selected; a new zeroed page may be provided;
 *  - no MIGRATE_PFN_MIGRATE: leave this entry alone.
 *
 * MIGRATE_PFN_WRITE tells that the page was mapped writable.  The dst array
 * is cleared.  The caller then stores in dst the locked destination pages
 * (migrate_pfn() of the pfn; a page for an empty slot is mapped writable
 * when the VMA is, whatever dst says) and calls
 * migrate_vma_pages() and migrate_vma_finalize(), which must always be
 * called after a successful setup, even if nothing is copied.
 *
 * @args->npages is set to the number of pages of the range and
 * @args->cpages to the number of entries left with MIGRATE_PFN_MIGRATE.
 *
 * Context: the caller holds the mmap lock of the VMA's mm (read is enough)
 * and may sleep.
 * Return: 0, or -EINVAL when @args is not valid: a missing VMA or array, an
 * unaligned or empty range, a range that is not inside the VMA, or a
 * hugetlb, DAX, VM_IO or VM_PFNMAP VMA.
 */
int migrate_vma_setup(struct migrate_vma *args)
{
	unsigned long npages;
	int ret;

	ret = mvma_check_args(args);
	if (ret)
		return ret;
	mmap_assert_locked(args->vma->vm_mm);
	if (vma_lookup(args->vma->vm_mm, args->start) != args->vma)
		return -EINVAL;

	npages = (args->end - args->start) >> PAGE_SHIFT;
	memset(args->src, 0, npages * sizeof(*args->src));
	memset(args->dst, 0, npages * sizeof(*args->dst));
	args->npages = npages;
	args->cpages = 0;

	mvma_collect(args);
	if (args->cpages)
		args->cpages = mdev_unmap(args->src, npages,
					  args->fault_page, true);
	return 0;
}
EXPORT_SYMBOL(migrate_vma_setup);

/*
 * Map @page, a new page for the empty slot at @addr, in @migrate->vma: a
 * device-private page as a device-private swap entry, any other as a present
 * pte.  The slot must still be empty (pte_none() or the zero page); the
 * page gets its memcg charge, anonymous rmap and a reference for the
 * mapping.  Returns true if it was mapped.
 */
static bool mvma_insert_page(struct migrate_vma *migrate, unsigned long addr,
			     struct page *page)
{
	struct vm_area_struct *vma = migrate->vma;
	struct folio *folio = page_folio(page);
	struct mm_struct *mm = vma->vm_mm;
	/*
	 * Drivers (nouveau, amdkfd) give no MIGRATE_PFN_WRITE for an empty
	 * slot: a new page is as writable as the VMA.
	 */
	bool writable = vma->vm_flags & VM_WRITE;
	pte_t *ptep, orig, pte;
	bool zero = false;
	spinlock_t *ptl;	/* of the page table */
	pmd_t pmdval;
	pgd_t *pgdp;
	p4d_t *p4dp;
	pud_t *pudp;
	pmd_t *pmdp;

	if (!vma_is_anonymous(vma) || userfaultfd_missing(vma))
		return false;
	if (folio_is_zone_device(folio) && !folio_is_device_private(folio) &&
	    !folio_is_device_coherent(folio))
		return false;

	pgdp = pgd_offset(mm, addr);
	p4dp = p4d_alloc(mm, pgdp, addr);
	if (!p4dp)
		return false;
	pudp = pud_alloc(mm, p4dp, addr);
	if (!pudp)
		return false;
	pmdp = pmd_alloc(mm, pudp, addr);
	if (!pmdp)
		return false;
	/* A huge page was faulted in meanwhile: the slot is not empty. */
	if (pmd_trans_huge(pmdp_get(pmdp)) || pmd_devmap(pmdp_get(pmdp)))
		return false;
	if (pte_alloc(mm, pmdp))
		return false;
	if (unlikely(anon_vma_prepare(vma)))
		return false;
	/* On failure below, the charge goes when the caller frees the page. */
	if (mem_cgroup_charge(folio, mm, GFP_KERNEL))
		return false;

	/* The contents must be visible before the page is. */
	__folio_mark_uptodate(folio);

	if (folio_is_device_private(folio)) {
		swp_entry_t entry;

		if (writable)
			entry = make_writable_device_private_entry(page_to_pfn(page));
		else
			entry = make_readable_device_private_entry(page_to_pfn(page));
		pte = swp_entry_to_pte(entry);
	} else {
		pte = mk_pte(page, vma->vm_page_prot);
		if (writable)
			pte = pte_mkwrite(pte_mkdirty(pte), vma);
	}

	/* Map, lock and check the PMD: as in mvma_collect_ptes(). */
	pmdval = pmdp_get_lockless(pmdp);
	ptep = pte_offset_map_nolock(mm, pmdp, addr, &ptl);
	if (!ptep)
		return false;
	__acquire(RCU);		/* taken by the map, dropped by pte_unmap() */
	spin_lock(ptl);
	if (!pmd_same(pmdval, pmdp_get_lockless(pmdp)) ||
	    check_stable_address_space(mm) || userfaultfd_missing(vma))
		goto unlock;
	orig = ptep_get(ptep);
	if (pte_present(orig)) {
		if (!is_zero_pfn(pte_pfn(orig)))
			goto unlock;
		zero = true;
	} else if (!pte_none(orig)) {
		goto unlock;
	}

	inc_mm_counter(mm, MM_ANONPAGES);
	folio_add_new_anon_rmap(folio, vma, addr, RMAP_EXCLUSIVE);
	if (!folio_is_zone_device(folio))
		folio_add_lru_vma(folio, vma);
	folio_get(folio);

	if (zero) {
		flush_cache_page(vma, addr, pte_pfn(orig));
		ptep_clear_flush(vma, addr, ptep);
	}
	set_pte_at(mm, addr, ptep, pte);
	if (pte_present(pte))
		update_mmu_cache(vma, addr, ptep);
	pte_unmap_unlock(ptep, ptl);
	return true;

unlock:
	pte_unmap_unlock(ptep, ptl);
	return false;
}

/*
 * Move the identity of one source folio to its destination.  Both are
 * locked; the data was copied by the driver.  Returns true on success.
 */
static bool mdev_move_identity(struct folio *newfolio, struct folio *folio,
			       bool fault_page)
{
	struct address_space *mapping = folio_mapping(folio);

	/*
	 * Device memory only holds anonymous pages outside any cache: a
	 * folio of the page cache cannot be replaced by a device folio
	 * there.  An anonymous folio in the swap cache (read back from swap,
	 * its copy there still valid) leaves the swap cache first; that
	 * fails while it is under writeback, or while a swap entry elsewhere
	 * still refers to the copy.
	 */
	if (folio_is_zone_device(newfolio) && mapping) {
		if (!folio_test_anon(folio) || !folio_free_swap(folio))
			return false;
		mapping = folio_mapping(folio);
	}
	if (folio_migrate_mapping(mapping, newfolio, folio, fault_page) !=
	    MIGRATEPAGE_SUCCESS)
		return false;
	folio_migrate_flags(newfolio, folio);
	return true;
}

/* Start a MMU_NOTIFY_MIGRATE invalidation of [@addr, @migrate->end). */
static void mvma_notify_from(struct migrate_vma *migrate, unsigned long addr,
			     struct mmu_notifier_range *range)
{
	mmu_notifier_range_init_owner(range, MMU_NOTIFY_MIGRATE, 0,
				      migrate->vma->vm_mm, addr, migrate->end,
				      migrate->pgmap_owner);
	mmu_notifier_invalidate_range_start(range);
}

static void mdev_pages(unsigned long *src_pfns,
		       unsigned long *dst_pfns,
		       unsigned long npages,
		       struct migrate_vma *migrate)
{
	struct mmu_notifier_range range;
	bool notified = false;
	unsigned long i;

	for (i = 0; i < npages; i++) {
		struct page *newpage = migrate_pfn_to_page(dst_pfns[i]);
		struct page *page = migrate_pfn_to_page(src_pfns[i]);
		bool fault_page;

		if (!(src_pfns[i] & MIGRATE_PFN_MIGRATE))
			continue;
		if (!newpage) {
			src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
			continue;
		}

		if (!page) {
			unsigned long addr;

			/* Empty slots only exist for a virtual range. */
			if (!migrate) {
				src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
				continue;
			}
			addr = migrate->start + (i << PAGE_SHIFT);
			/*
			 * Filling a slot that holds the zero page changes
			 * what secondary MMUs may have mapped.
			 */
			if (!notified) {
				mvma_notify_from(migrate, addr, &range);
				notified = true;
			}
			if (!mvma_insert_page(migrate, addr, newpage))
				src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
			continue;
		}

		fault_page = migrate && page == migrate->fault_page;
		if (!mdev_move_identity(page_folio(newpage), page_folio(page),
					fault_page))
			src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
	}

	if (notified)
		mmu_notifier_invalidate_range_end(&range);
}

/**
 * migrate_vma_pages() - move the selected pages to their destinations
 * @migrate: the structure given to migrate_vma_setup()
 *
 * For every entry still marked MIGRATE_PFN_MIGRATE that has a destination
 * page in @migrate->dst, the destination takes over the source page's
 * place: its anon_vma and index, its memcg charge and its flags.  Empty
 * slots get the new page mapped directly (charged to the process's memcg,
 * added to the anonymous rmap, as a device-private entry for device-private
 * memory), unless the slot was filled meanwhile or userfaultfd handles
 * missing pages of the VMA.  Entries without a destination, and those that
 * cannot move (an unexpected reference appeared, for instance), lose
 * MIGRATE_PFN_MIGRATE: their source stays.
 *
 * The CPU page tables still hold migration entries afterwards; the caller
 * may update its device page tables now, then must call
 * migrate_vma_finalize().
 *
 * Context: the caller holds the mmap lock taken for migrate_vma_setup().
 */
void migrate_vma_pages(struct migrate_vma *migrate)
{
	mdev_pages(migrate->src, migrate->dst, migrate->npages,
		   migrate);
}
EXPORT_SYMBOL(migrate_vma_pages);

/**
 * migrate_device_pages() - move device pages selected by pfn
 * @src_pfns: the array filled by migrate_device_range()
 * @dst_pfns: the locked destination pages, as migrate pfns
 * @npages: number of entries in both arrays
 *
 * The counterpart of migrate_vma_pages() for migrate_device_range(): each
 * entry still marked MIGRATE_PFN_MIGRATE with a destination in @dst_pfns
 * hands its identity over to it; the others lose MIGRATE_PFN_MIGRATE.
 * migrate_device_finalize() must be called afterwards.
 */
void migrate_device_pages(unsigned long *src_pfns, unsigned long *dst_pfns,
			  unsigned long npages)
{
	mdev_pages(src_pfns, dst_pfns, npages, NULL);
}
EXPORT_SYMBOL(migrate_device_pages);

/*
 * Step 5 of the comment at the top, for every entry: the work of
 * migrate_device_finalize() and migrate_vma_finalize().
 */
static void mdev_finalize(const unsigned long *src_pfns,
			  const unsigned long *dst_pfns,
			  unsigned long npages)
{
	unsigned long i;

	for (i = 0; i < npages; i++) {
		struct page *newpage = migrate_pfn_to_page(dst_pfns[i]);
		struct page *page = migrate_pfn_to_page(src_pfns[i]);
		struct folio *folio, *newfolio = NULL;
		bool moved;

		if (newpage)
			newfolio = page_folio(newpage);

		if (!page) {
			/*
			 * An empty slot: a mapped new page holds its own
			 * reference now, an unused one is freed.
			 */
			if (newfolio) {
				folio_unlock(newfolio);
				folio_put(newfolio);
			}
			continue;
		}

		folio = page_folio(page);
		moved = newfolio && (src_pfns[i] & MIGRATE_PFN_MIGRATE);
		remove_migration_ptes(folio, moved ? newfolio : folio, 0);
		mdev_release_src(folio, !moved &&
				 !folio_is_zone_device(folio));

		if (!newfolio)
			continue;
		folio_unlock(newfolio);
		if (moved && !folio_is_zone_device(newfolio))
			folio_putback_lru(newfolio);
		else
			folio_put(newfolio);
	}
}

/**
 * migrate_vma_finalize() - end a migration started by migrate_vma_setup()
 * @migrate: the structure given to migrate_vma_setup()
 *
 * Maps the new pages in place of the migration entries of the pages that
 * moved, maps the old pages back for those that did not, unlocks everything
 * and releases the pages: see migrate_device_finalize().  After it returns
 * the src and dst arrays no longer refer to pages the caller may use.
 *
 * Context: the caller holds the mmap lock taken for migrate_vma_setup().
 */
void migrate_vma_finalize(struct migrate_vma *migrate)
{
	mdev_finalize(migrate->src, migrate->dst, migrate->npages);
}
EXPORT_SYMBOL(migrate_vma_finalize);

/**
 * migrate_device_finalize() - end a migration by pfn
 * @src_pfns: the source entries, as left by migrate_device_pages()
 * @dst_pfns: the destination entries
 * @npages: number of entries in both arrays
 *
 * Every migration entry left by the unmap step is replaced by a mapping of
 * the destination page if the entry is still marked MIGRATE_PFN_MIGRATE, or
 * of the source page otherwise, so a page that did not move is mapped
 * exactly as before.  Then all pages are unlocked; sources that moved are
 * freed, the others put back; destinations that were not used are freed.
 * The caller's references to the destination pages are consumed.
 */
void migrate_device_finalize(unsigned long *src_pfns,
			     unsigned long *dst_pfns, unsigned long npages)
{
	mdev_finalize(src_pfns, dst_pfns, npages);
}
EXPORT_SYMBOL(migrate_device_finalize);

/*
 * Take device page @pfn for a migration by pfn: a reference and its lock,
 * waiting for the lock (the caller holds no other).  A free page (no
 * reference) is not selected.  Returns the page's source entry.
 */
static unsigned long mdev_select(unsigned long pfn)
{
	struct folio *folio = page_folio(pfn_to_page(pfn));

	if (!folio_try_get(folio))
		return 0;
	folio_lock(folio);
	return migrate_pfn(pfn) | MIGRATE_PFN_MIGRATE;
}

/**
 * migrate_device_range() - select a range of device memory for eviction
 * @src_pfns: array of @npages entries, filled with migrate pfns
 * @start: first pfn of the range (device-private or device-coherent memory)
 * @npages: number of pages
 *
 * Every page of the range that is in use (a free page has no reference and
 * is skipped) is locked, waiting for it if need be, and unmapped from every
 * process that maps it, leaving migration entries.  Pages that cannot move
 * (pinned, or still mapped somewhere) are mapped back and their entry
 * cleared; the others are marked MIGRATE_PFN_MIGRATE.  No VMA is involved:
 * the caller copies each selected page to a new locked page, fills a
 * destination array and calls migrate_device_pages() and
 * migrate_device_finalize().  MIGRATE_PFN_WRITE is never set, as the pages
 * may be mapped with different permissions by several processes; the
 * migration entries remember each mapping's.
 *
 * Context: may sleep; no page of the range may be locked by the caller.
 * Return: 0.
 */
int migrate_device_range(unsigned long *src_pfns, unsigned long start,
			 unsigned long npages)
{
	unsigned long i;

	for (i = 0; i < npages; i++)
		src_pfns[i] = mdev_select(start + i);
	mdev_unmap(src_pfns, npages, NULL, false);
	return 0;
}
EXPORT_SYMBOL(migrate_device_range);

/**
 * migrate_device_pfns() - select a set of device pages for eviction
 * @src_pfns: on entry @npages pfns of device-private or device-coherent
 *	memory, in any order and from any number of page maps; on return the
 *	migrate pfns of the selection, as migrate_device_range() leaves them
 * @npages: number of entries
 *
 * The same as migrate_device_range() for pages that are not contiguous: a
 * driver evicting the pages of one buffer object, say, names them one by
 * one.  Each pfn must appear once.  The migration is completed with
 * migrate_device_pages() and migrate_device_finalize().
 *
 * Context: may sleep; no page of the set may be locked by the caller.
 * Return: 0.
 */
int migrate_device_pfns(unsigned long *src_pfns, unsigned long npages)
{
	unsigned long i;

	for (i = 0; i < npages; i++)
		src_pfns[i] = mdev_select(src_pfns[i]);
	mdev_unmap(src_pfns, npages, NULL, false);
	return 0;
}
EXPORT_SYMBOL(migrate_device_pfns);

/**
 * migrate_device_coherent_folio() - move a DEVICE_COHERENT folio to system RAM
 * @folio: the folio; the caller holds a reference, which this consumes
 *
 * GUP cannot take a long-term pin on device memory the device may want
 * back, so it moves such a folio to an unmovable system page first.  The
 * folio is unmapped, copied and replaced in all its mappings.
 *
 * Return: 0 if the folio was migrated, -EBUSY if it is locked, pinned or
 * could not be unmapped, or no system page was available.
 */
int migrate_device_coherent_folio(struct folio *folio)
{
	unsigned long src_pfn, dst_pfn = 0;
	struct folio *newfolio;
	bool moved;

	WARN_ON_ONCE(folio_test_large(folio));

	if (!folio_trylock(folio)) {
		folio_put(folio);
		return -EBUSY;
	}
	src_pfn = migrate_pfn(folio_pfn(folio)) | MIGRATE_PFN_MIGRATE;
	if (!mdev_unmap(&src_pfn, 1, NULL, false))
		return -EBUSY;

	/* The new page will be pinned: it must not be movable. */
	newfolio = folio_alloc(GFP_USER | __GFP_NOWARN, 0);
	if (newfolio) {
		folio_lock(newfolio);
		folio_copy(newfolio, folio);
		dst_pfn = migrate_pfn(folio_pfn(newfolio));
	}

	migrate_device_pages(&src_pfn, &dst_pfn, 1);
	moved = src_pfn & MIGRATE_PFN_MIGRATE;
	migrate_device_finalize(&src_pfn, &dst_pfn, 1);
	return moved ? 0 : -EBUSY;
}

#ifdef CONFIG_MIGRATE_DEVICE_KUNIT_TEST
#include "tests/migrate_device-kunit.h"
#endif
