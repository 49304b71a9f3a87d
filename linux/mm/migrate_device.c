// SPDX-License-Identifier: GPL-2.0
/*
 * Moving process memory to and from device memory.  The design is told in
 * the DOC: blocks below, which Documentation/mm/hmm.rst pulls in.
 */

/**
 * DOC: Migrating a range
 *
 * A driver moves a range of a process into its memory in three steps, with
 * the mmap lock held for read across all of them:
 *
 * 1. migrate_vma_setup() collects the range.  It picks the pages the caller
 *    selected (%MIGRATE_VMA_SELECT_SYSTEM, %MIGRATE_VMA_SELECT_DEVICE_PRIVATE
 *    with a matching ``pgmap_owner``, %MIGRATE_VMA_SELECT_DEVICE_COHERENT),
 *    locks and isolates them, and replaces their CPU mappings with migration
 *    entries.  A hole or the zero page in a private anonymous VMA is
 *    reported as migratable with no source page, so that the driver can
 *    place a new page there.  Pages the core cannot move (pinned by GUP,
 *    locked by someone else, mapped in ways migration does not handle) are
 *    left out: their ``src[i]`` lacks %MIGRATE_PFN_MIGRATE.
 * 2. The driver allocates a destination page for each entry it wants to
 *    move, locks it, copies the data with its DMA engine and stores it in
 *    ``dst[i]`` with migrate_pfn().  It may skip any entry by leaving
 *    ``dst[i]`` at 0.  It then calls migrate_vma_pages(), which hands each
 *    page's identity (anon_vma and index, memcg charge, flags) over to its
 *    destination, and installs the new pages of empty slots.
 * 3. The driver updates its own page table and calls migrate_vma_finalize(),
 *    which points every migration entry at the new page, or back at the old
 *    one where the move did not happen, then unlocks and releases
 *    everything.  A failed or partial migration leaves the process exactly
 *    as it was for the entries that did not move.
 *
 * The migrate_device_*() calls do the same from a pfn range of device
 * memory instead of a virtual range, for drivers that must empty their
 * memory (unbind, device memory pressure) without knowing which process
 * maps each page.
 *
 * The entries of the ``src`` and ``dst`` arrays are "migrate pfns": a pfn
 * shifted by %MIGRATE_PFN_SHIFT, plus %MIGRATE_PFN_VALID when there is a
 * page, %MIGRATE_PFN_MIGRATE while the entry is still on its way, and
 * %MIGRATE_PFN_WRITE when the mapping was writable.  An entry with
 * %MIGRATE_PFN_MIGRATE but no %MIGRATE_PFN_VALID is an empty slot that the
 * driver may fill with a new page.
 */

/**
 * DOC: Life of a selected source page
 *
 * 1. The page-table walk finds it, takes a reference and locks it with a
 *    trylock (nothing here ever sleeps on a page lock while holding another
 *    one, so migrations cannot deadlock each other), and replaces its pte
 *    with a migration entry on the spot, under the page table lock that the
 *    walk holds anyway.
 * 2. A system page is taken off the LRU, the isolation reference replacing
 *    the walk's one.
 * 3. try_to_migrate() replaces the mappings the walk could not see (other
 *    processes after fork(), or every mapping when the migration starts
 *    from a pfn) with migration entries too.
 * 4. If the page is still mapped, or somebody else holds a reference (a GUP
 *    pin for instance), its mappings are restored at once and its entry is
 *    dropped from the migration.
 * 5. migrate_vma_pages() moves the page's identity to the destination, and
 *    finalize either frees the source or puts it back where it was.
 */

/**
 * DOC: Large folios
 *
 * Without %MIGRATE_VMA_SELECT_COMPOUND only base pages move: a large folio
 * met by the walk is split first (a system folio by split_folio(), a device
 * folio by mdev_split_mapped()), so a device receives 512 entries for a
 * transparent huge page and the CPU gets small pages back.
 *
 * With it, a large anonymous folio (a THP, whether a PMD or ptes map it)
 * that lies wholly in the range, naturally aligned and mapped in order, is
 * collected as one entry carrying %MIGRATE_PFN_COMPOUND; the entries of its
 * other pages are zero, and ``cpages`` counts all its pages.  All its ptes
 * become migration entries under one page table lock and its mappings are
 * dropped in one step, so that it is never seen partly mapped (and never
 * queued for a deferred split) on its way.  A PMD-mapped
 * THP has its PMD split into ptes first (the folio stays whole), and so
 * has a device-private PMD entry, so that every large folio on its way is
 * mapped by ptes and its migration entries are ptes.  A PMD-sized,
 * PMD-aligned empty slot of an anonymous VMA (nothing mapped, or the huge
 * zero page) is offered the same way, as one compound empty entry.  The
 * driver answers a compound entry with:
 *
 * - a locked folio of the same order, %MIGRATE_PFN_COMPOUND set in
 *   ``dst[i]``: a huge device folio on the way in, a THP on the way out
 *   (vma_alloc_folio()).  The folio takes the source's place whole: one
 *   allocation, one copy, one rmap walk;
 * - order-0 pages in the entries of each page it covers: an empty slot is
 *   filled page by page; a folio, of device or system memory, is split
 *   where it stands, its pages staying locked, isolated and unmapped behind
 *   their migration entries (mdev_split_unmapped() for a device folio, the
 *   allocator's split_unmapped_anon_folio() for a THP), and each page moves
 *   on its own (the data the driver copied stays valid: no page is mapped
 *   again in between);
 * - nothing, or a destination of another order: the source stays.
 *
 * A compound destination for an order-0 source is refused the same way.
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

#define CREATE_TRACE_POINTS
#include <trace/events/migrate_device.h>
#include "migrate_device_watch.h"

/*
 * The size of a compound empty slot.  HPAGE_PMD_ORDER does not build
 * without CONFIG_TRANSPARENT_HUGEPAGE, where no compound entry is made.
 */
#define MDEV_PMD_ORDER	(PMD_SHIFT - PAGE_SHIFT)
#define MDEV_PMD_NR	BIT(MDEV_PMD_ORDER)

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

/*
 * May the empty slot at @addr be offered as one compound entry covering a
 * PMD?  Only when the caller asked for compound entries, the slot is a
 * whole naturally aligned PMD of the range (@end is where the part of the
 * range being looked at ends) and the VMA does not refuse huge pages.
 */
static bool mvma_compound_hole(const struct migrate_vma *migrate,
			       struct vm_area_struct *vma, unsigned long addr,
			       unsigned long end)
{
	return IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE) &&
	       (migrate->flags & MIGRATE_VMA_SELECT_COMPOUND) &&
	       IS_ALIGNED(addr, PMD_SIZE) && end - addr >= PMD_SIZE &&
	       !(vma->vm_flags & VM_NOHUGEPAGE);
}

/*
 * Record [start, end) as empty slots (one compound slot per PMD where
 * mvma_compound_hole() allows), or as not migrating.
 */
static void mvma_fill(struct migrate_vma *migrate, struct vm_area_struct *vma,
		      unsigned long start, unsigned long end, bool hole)
{
	unsigned long addr = start;

	while (addr < end) {
		unsigned long *src = &migrate->src[mvma_index(migrate, addr)];

		if (!hole) {
			*src = 0;
			addr += PAGE_SIZE;
		} else if (mvma_compound_hole(migrate, vma, addr, end)) {
			/* the entries of the other pages stay zero */
			*src = MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND;
			migrate->cpages += MDEV_PMD_NR;
			addr += PMD_SIZE;
		} else {
			*src = MIGRATE_PFN_MIGRATE;
			migrate->cpages++;
			addr += PAGE_SIZE;
		}
	}
}

/* What the collect walk works for, its walk->private. */
struct mvma_walk {
	struct migrate_vma *migrate;
	unsigned long split;	/* large folios split on the way */
};

static struct mvma_walk *to_mvma_walk(struct mm_walk *walk)
{
	return walk->private;
}

static int mvma_collect_hole(unsigned long start, unsigned long end,
			     __always_unused int depth, struct mm_walk *walk)
{
	struct migrate_vma *migrate = to_mvma_walk(walk)->migrate;

	mvma_fill(migrate, walk->vma, start, end,
		  mvma_holes_migrate(migrate, walk->vma));
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
 * that the caller can collect it whole or split it and look at the entry
 * again.
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
		folio = page_folio(page);
		if (folio_test_large(folio))
			goto large;
		mpfn = migrate_pfn(page_to_pfn(page)) | MIGRATE_PFN_MIGRATE;
		if (is_writable_device_private_entry(entry))
			mpfn |= MIGRATE_PFN_WRITE;
		folio_get(folio);
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
	if (folio_test_large(folio))
		goto large;
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

large:
	if (folio != skip) {
		folio_get(folio);
		*large = folio;
	}
	return 0;
}

/*
 * Replace the pte at @addr, which maps @page (locked and referenced by us),
 * with a migration entry, as try_to_migrate() would but without an rmap
 * walk, since the walk already holds the page table lock.  The entry keeps
 * what the pte knew: writable or not, exclusive to this mapping, young,
 * dirty, soft-dirty and uffd-wp bits.  Returns false and leaves the pte as
 * it was if the page may be pinned (its exclusivity cannot be given up).
 * The mapping's rmap count and reference are left for the caller to drop
 * (mvma_set_migration_entry() for one page, mvma_collect_compound() for a
 * whole folio at once).  The caller flushes the TLB before dropping the
 * lock.
 */
static bool mvma_migration_pte(struct vm_area_struct *vma, unsigned long addr,
			       pte_t *ptep, struct page *page)
{
	struct folio *folio = page_folio(page);
	struct mm_struct *mm = vma->vm_mm;
	bool exclusive = folio_test_anon(folio) && PageAnonExclusive(page);
	bool writable, young = false, dirty = false, soft_dirty, uffd_wp;
	unsigned long pfn = page_to_pfn(page);
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
	return true;
}

/* mvma_migration_pte() for an order-0 page, which drops the mapping too. */
static bool mvma_set_migration_entry(struct vm_area_struct *vma,
				     unsigned long addr, pte_t *ptep,
				     struct page *page)
{
	struct folio *folio = page_folio(page);

	if (!mvma_migration_pte(vma, addr, ptep, page))
		return false;
	/* The mapping's reference goes; ours stays until finalize. */
	folio_remove_rmap_pte(folio, page, vma);
	folio_put(folio);
	return true;
}

/*
 * The pfn a pte maps, for a present pte or a device-private entry; -1 for
 * anything else.
 */
static unsigned long mvma_pte_pfn(pte_t pte)
{
	swp_entry_t entry;

	if (pte_present(pte))
		return pte_pfn(pte);
	if (pte_none(pte))
		return -1UL;
	entry = pte_to_swp_entry(pte);
	return is_device_private_entry(entry) ? swp_offset_pfn(entry) : -1UL;
}

/*
 * Every anonymous source keeps a reference on its anon_vma until finalize
 * (see mdev_unmap()); the VMA keeps it alive while the walk holds the mmap
 * lock, so taking it here cannot fail.
 */
static void mvma_hold_anon_vma(struct folio *folio)
{
	struct anon_vma *anon_vma = folio_anon_vma(folio);

	if (anon_vma)
		get_anon_vma(anon_vma);
}

/*
 * Can @folio, whose page table entries the walk met at @addr (@ptep), be
 * collected as one compound entry?  It must be an anonymous folio mapped
 * here whole and in order, naturally aligned (which keeps it inside this
 * page table), inside [@addr, @end), each of its pages by the same kind
 * of entry (present, or device-private).
 */
static bool mvma_compound_ok(const struct migrate_vma *migrate,
			     struct folio *folio, unsigned long addr,
			     unsigned long end, pte_t *ptep)
{
	long i, nr = folio_nr_pages(folio);
	bool present = pte_present(ptep_get(ptep));

	if (!(migrate->flags & MIGRATE_VMA_SELECT_COMPOUND) ||
	    !folio_test_anon(folio) || folio_test_ksm(folio) ||
	    !IS_ALIGNED(addr, folio_size(folio)) ||
	    end - addr < folio_size(folio))
		return false;
	for (i = 0; i < nr; i++) {
		pte_t pte = ptep_get(ptep + i);

		if (pte_present(pte) != present ||
		    mvma_pte_pfn(pte) != folio_pfn(folio) + i)
			return false;
	}
	return true;
}

/*
 * Collect @folio (referenced by the walk), which mvma_compound_ok()
 * accepted, as one compound entry at @addr: lock it without waiting and
 * replace each of its ptes with a migration entry.  Called and returns
 * with the page table lock held.  If a pte cannot be replaced (the folio
 * may have been pinned meanwhile), the folio is returned in @undo, locked
 * and referenced: the caller maps it back once it dropped the lock.
 * Returns whether a pte that was present changed (a TLB flush is due).
 */
static bool mvma_collect_compound(struct migrate_vma *migrate,
				  struct vm_area_struct *vma,
				  unsigned long addr, pte_t *ptep,
				  struct folio *folio, struct folio **undo)
{
	unsigned long *src = &migrate->src[mvma_index(migrate, addr)];
	long i, nr = folio_nr_pages(folio);
	bool present = pte_present(ptep_get(ptep));
	unsigned long mpfn = MIGRATE_PFN_WRITE;

	if (!folio_trylock(folio)) {
		mdev_left_folio(folio, MDEV_LEFT_LOCKED);
		folio_put(folio);
		return false;
	}
	for (i = 0; i < nr; i++) {
		pte_t pte = ptep_get(ptep + i);

		if (present ? !pte_write(pte) :
		    !is_writable_device_private_entry(pte_to_swp_entry(pte)))
			mpfn = 0;
		if (!mvma_migration_pte(vma, addr + i * PAGE_SIZE, ptep + i,
					folio_page(folio, i)))
			break;
	}
	/*
	 * The mappings of the pages now behind migration entries go in one
	 * step, and their references with them (ours stays until finalize).
	 * One page at a time, the folio would look partly mapped after the
	 * first one and be queued for a deferred split, flagged as partly
	 * mapped for good even if it is mapped whole again after a failed
	 * migration; and each step would update the mapped-page statistics.
	 */
	if (i) {
		folio_remove_rmap_ptes(folio, folio_page(folio, 0), i, vma);
		folio_put_refs(folio, i);
	}
	if (i < nr) {
		*undo = folio;
		return present;
	}
	mvma_hold_anon_vma(folio);
	*src = migrate_pfn(folio_pfn(folio)) | mpfn | MIGRATE_PFN_MIGRATE |
	       MIGRATE_PFN_COMPOUND;
	migrate->cpages += nr;
	return present;
}

/*
 * Walk the ptes of [addr, end) under the page table lock, recording each
 * entry and unmapping on the spot every selected page that can be locked
 * without waiting (a page somebody else has locked is left alone).  A
 * large folio is collected whole when the caller asked for compound
 * entries and mvma_compound_ok() agrees.  Returns where it stopped: @end,
 * or earlier when it met a large folio to split (@large is then set) or
 * could not map the page table (it went away: the caller looks again).
 */
static unsigned long mvma_collect_ptes(struct migrate_vma *migrate,
				       struct mm_walk *walk, pmd_t *pmdp,
				       unsigned long addr, unsigned long end,
				       struct folio *skip,
				       struct folio **large)
{
	struct vm_area_struct *vma = walk->vma;
	unsigned long first = addr;
	struct folio *undo = NULL;
	pte_t *start_pte, *ptep;
	spinlock_t *ptl;	/* of the page table */
	bool flush = false;

	start_pte = pte_offset_map_lock(walk->mm, pmdp, addr, &ptl);
	if (!start_pte)
		return addr;
	arch_enter_lazy_mmu_mode();

	for (ptep = start_pte; addr < end; addr += PAGE_SIZE, ptep++) {
		pte_t pte = ptep_get(ptep);
		struct page *page;
		unsigned long mpfn;

		mpfn = mvma_collect_one(migrate, vma, addr, pte, skip, large);
		if (*large) {
			long nr = folio_nr_pages(*large);

			if (!mvma_compound_ok(migrate, *large, addr, end, ptep))
				break;
			flush |= mvma_collect_compound(migrate, vma, addr, ptep,
						       *large, &undo);
			if (undo)
				break;
			*large = NULL;
			addr += (nr - 1) * PAGE_SIZE;
			ptep += nr - 1;
			continue;
		}

		page = migrate_pfn_to_page(mpfn);
		if (page) {
			struct folio *folio = page_folio(page);

			if (!folio_trylock(folio)) {
				mdev_left_folio(folio, MDEV_LEFT_LOCKED);
				folio_put(folio);
				mpfn = 0;
			} else if (!mvma_set_migration_entry(vma, addr, ptep,
							     page)) {
				mdev_left_folio(folio, MDEV_LEFT_PINNED);
				folio_unlock(folio);
				folio_put(folio);
				mpfn = 0;
			} else {
				mvma_hold_anon_vma(folio);
				flush |= pte_present(pte);
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
	if (undo) {
		/*
		 * Part of a large folio was unmapped when a pin stopped us:
		 * map it back and hand it to the caller (still referenced,
		 * in @large) to be split, which fails for a pinned folio.
		 */
		remove_migration_ptes(undo, undo, 0);
		folio_unlock(undo);
	}
	return addr;
}

/*
 * Split @folio, a large device folio that is locked and unmapped (each of
 * its mappings a migration entry) and that nobody but the caller holds:
 * one reference, plus one more if @fault_page, a page the fault path
 * holds a reference on, is one of its pages.  Each page becomes an order-0
 * folio, locked and holding one reference for the caller; the folio of
 * @fault_page holds the fault path's one too.  The migration entries stay
 * as they are: they name pages, not folios.
 *
 * The page allocator's split (split_folio()) cannot be used: it unmaps
 * and maps back the folio itself, and it puts the pages on the LRU.
 * Device folios are on no LRU, in no page or swap cache, and have no
 * page owner: what a split has to do for them is to make every page a
 * folio of its own with the head's identity (mapping, index, flags), to
 * divide the memcg charge and the map reference, and to tell the driver.
 *
 * Returns false, doing nothing, if somebody else holds a reference.
 */
static bool mdev_split_unmapped(struct folio *folio, struct page *fault_page)
{
	struct dev_pagemap *pgmap = page_pgmap(&folio->page);
	unsigned int order = folio_order(folio);
	long i, nr = folio_nr_pages(folio);
	bool faulting = fault_page && page_folio(fault_page) == folio;
	/* the flags a page of the folio keeps of the head's */
	const unsigned long keep = BIT(PG_locked) | BIT(PG_uptodate) |
				   BIT(PG_dirty) | BIT(PG_swapbacked) |
				   BIT(PG_referenced);
	struct page *head = &folio->page;

	if (WARN_ON_ONCE(!folio_is_zone_device(folio) || folio_mapped(folio)))
		return false;
	if (!folio_ref_freeze(folio, 1 + faulting))
		return false;

	split_page_memcg(head, order, 0);
	if (folio_test_anon(folio))
		mod_mthp_stat(order, MTHP_STAT_NR_ANON, -1);

	for (i = 1; i < nr; i++) {
		struct page *page = head + i;

		page->flags = (page->flags & ~PAGE_FLAGS_CHECK_AT_PREP) |
			      (head->flags & keep);
		page->mapping = head->mapping;
		page->index = head->index + i;
		page->private = 0;
		/* the flags and fields above before the page is a folio */
		smp_wmb();
		page->pgmap = pgmap;	/* where the compound head was */
		page->zone_device_data = NULL;
	}
	ClearPageHead(head);
	/* the tails are folios from here: give them their references */
	for (i = 1; i < nr; i++)
		page_ref_unfreeze(head + i, 1 + (head + i == fault_page));
	folio_ref_unfreeze(folio, 1 + (head == fault_page));

	/* device memory that migrates holds one map reference per folio */
	percpu_ref_get_many(&pgmap->ref, nr - 1);
	if (pgmap->ops->folio_split) {
		for (i = 1; i < nr; i++)
			pgmap->ops->folio_split(folio, page_folio(head + i));
	}
	mdev_watch_split(page_to_pfn(head), order);
	return true;
}

/*
 * Split a large device folio that is mapped: unmap it (migration entries
 * in place of its ptes), split it, map its pages back one by one.  The
 * caller holds a reference, which stays on the folio of the first page,
 * and so may the fault path (@fault_page, or NULL).  Returns 0 on success.
 */
static int mdev_split_mapped(struct folio *folio, struct page *fault_page)
{
	long i, nr = folio_nr_pages(folio);
	struct page *head = &folio->page;

	if (!folio_trylock(folio))
		return -EBUSY;
	try_to_migrate(folio, 0);
	if (folio_mapped(folio) || !mdev_split_unmapped(folio, fault_page)) {
		remove_migration_ptes(folio, folio, 0);
		folio_unlock(folio);
		return -EBUSY;
	}
	for (i = 0; i < nr; i++) {
		struct folio *part = page_folio(head + i);

		remove_migration_ptes(part, part, 0);
		folio_unlock(part);
		if (i)
			folio_put(part);
	}
	return 0;
}

/*
 * Split @folio (referenced by the caller, reference dropped here) into
 * order-0 pages for the collect walk @walk, which counts it.  Returns 0 on
 * success.
 */
static int mvma_split(struct folio *folio, struct page *fault_page,
		      struct mm_walk *walk)
{
	int ret = -EBUSY;

	if (folio_is_zone_device(folio)) {
		ret = mdev_split_mapped(folio, fault_page);
	} else if (folio_trylock(folio)) {
		ret = split_folio(folio);
		folio_unlock(folio);
	}
	mdev_left_unsplit(folio, ret);
	if (!ret)
		to_mvma_walk(walk)->split++;
	folio_put(folio);
	return ret;
}

/*
 * A device-private PMD, @pmd read under @ptl, maps a device folio whole.
 * If its pages are to move, split the entry into device-private ptes (the
 * folio stays whole) for the pte loop, and return true; return false to
 * skip the range.
 */
static bool mvma_collect_device_pmd(struct migrate_vma *migrate,
				    struct mm_walk *walk, pmd_t *pmdp,
				    unsigned long addr, pmd_t pmd,
				    spinlock_t *ptl)
	__releases(ptl)
{
	struct page *page = pfn_swap_entry_to_page(pmd_to_swp_entry(pmd));
	bool wanted = mvma_wants_device(migrate, page_pgmap(page),
					MIGRATE_VMA_SELECT_DEVICE_PRIVATE);

	spin_unlock(ptl);
	if (wanted)
		split_huge_pmd(walk->vma, pmdp, addr);
	return wanted;
}

/*
 * A PMD maps a huge page at @addr: a THP, or a device folio through a
 * device-private entry (mvma_collect_device_pmd()).  Turn it into a page
 * table the pte loop can handle.  For a THP, when compound entries are
 * asked for and the whole PMD is in the range, only the mapping is split:
 * the pte loop collects the folio whole.  Otherwise the folio itself is
 * split when system memory is selected (so its pages can move one by one);
 * if that fails, or system memory is not selected, only the mapping.
 * Returns false when the rest of the range is to be skipped, true when the
 * caller is to look at the PMD again.
 */
static bool mvma_collect_huge_pmd(struct migrate_vma *migrate,
				  struct mm_walk *walk, pmd_t *pmdp,
				  unsigned long addr, unsigned long end,
				  struct folio **skip)
{
	struct vm_area_struct *vma = walk->vma;
	struct folio *folio;
	spinlock_t *ptl;	/* of the pmd */
	pmd_t pmd;

	ptl = pmd_lock(walk->mm, pmdp);
	pmd = pmdp_get(pmdp);
	if (is_pmd_device_private_entry(pmd))
		return mvma_collect_device_pmd(migrate, walk, pmdp, addr, pmd,
					       ptl);
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
	if ((migrate->flags & MIGRATE_VMA_SELECT_COMPOUND) &&
	    IS_ALIGNED(addr, PMD_SIZE) && end - addr >= PMD_SIZE &&
	    folio_test_anon(folio)) {
		spin_unlock(ptl);
		split_huge_pmd(vma, pmdp, addr);
		return true;
	}
	folio_get(folio);
	spin_unlock(ptl);

	if (mvma_split(folio, NULL, walk)) {
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
	struct migrate_vma *migrate = to_mvma_walk(walk)->migrate;
	struct folio *skip = NULL;
	unsigned long addr = start;

	while (addr < end) {
		struct folio *large = NULL;
		pmd_t pmd = pmdp_get_lockless(pmdp);

		/*
		 * The huge zero page is an empty slot too: filling it
		 * replaces it (see mvma_insert()).
		 */
		if (pmd_none(pmd) ||
		    (is_huge_zero_pmd(pmd) &&
		     mvma_compound_hole(migrate, walk->vma, addr, end))) {
			mvma_fill(migrate, walk->vma, addr, end,
				  mvma_holes_migrate(migrate, walk->vma));
			break;
		}
		if (pmd_trans_huge(pmd) || is_pmd_device_private_entry(pmd)) {
			if (mvma_collect_huge_pmd(migrate, walk, pmdp, addr,
						  end, &skip))
				continue;
			mvma_fill(migrate, walk->vma, addr, end, false);
			break;
		}
		/*
		 * Anything else that is not a page table, a huge page under
		 * migration for instance, is left alone: waiting for it here,
		 * with pages of the range already locked, could deadlock.
		 */
		if (!pmd_present(pmd) || pmd_leaf(pmd)) {
			mvma_fill(migrate, walk->vma, addr, end, false);
			break;
		}

		addr = mvma_collect_ptes(migrate, walk, pmdp, addr, end, skip,
					 &large);
		if (large && mvma_split(large, migrate->fault_page, walk))
			skip = large;
	}
	return 0;
}

/*
 * Fill the src array for the whole range.  Secondary MMUs are told first
 * that the range is being migrated; a device whose pages are the ones moving
 * recognises its own pgmap_owner and can ignore it, as it drives the move.
 * Returns the number of large folios split on the way.
 */
static unsigned long mvma_collect(struct migrate_vma *migrate)
{
	static const struct mm_walk_ops ops = {
		.walk_lock	= PGWALK_RDLOCK,
		.pte_hole	= mvma_collect_hole,
		.pmd_entry	= mvma_collect_pmd,
	};
	struct mm_struct *mm = migrate->vma->vm_mm;
	unsigned long start = migrate->start, end = migrate->end;
	struct mvma_walk w = { .migrate = migrate };
	struct mmu_notifier_range notify;

	mmu_notifier_range_init_owner(&notify, MMU_NOTIFY_MIGRATE, 0, mm,
				      start, end, migrate->pgmap_owner);
	mmu_notifier_invalidate_range_start(&notify);
	walk_page_range(mm, start, end, &ops, &w);
	mmu_notifier_invalidate_range_end(&notify);
	return w.split;
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

#ifdef CONFIG_ARCH_ENABLE_THP_MIGRATION
/*
 * The lock of the PTE table under the locked PMD @pmdp, if it is another
 * one (without split page table locks both are the mm's).
 */
static spinlock_t *mdev_lock_table(struct mm_struct *mm, pmd_t *pmdp,
				   spinlock_t *pml)
	__acquires(ptl)
{
	spinlock_t *ptl = pte_lockptr(mm, pmdp);

	if (ptl != pml)
		spin_lock_nested(ptl, SINGLE_DEPTH_NESTING);
	else
		__acquire(ptl);
	return ptl;
}

static void mdev_unlock_table(spinlock_t *ptl, spinlock_t *pml)
	__releases(ptl)
{
	if (ptl != pml)
		spin_unlock(ptl);
	else
		__release(ptl);
}

/* What the ptes of a folio about to be mapped by a PMD said. */
struct mdev_pmd_bits {
	bool write, dirty, young, soft_dirty;
};

/*
 * Is @pte the mapping of page @i of @folio, an anonymous page exclusive
 * to this mapping, writable as @bits says, not uffd-wp, and for a system
 * page present and accessible?  Collects the dirty, young and soft-dirty
 * bits in @bits.
 */
static bool mdev_pte_fits(pte_t pte, struct folio *folio, long i,
			  struct mdev_pmd_bits *bits)
{
	unsigned long pfn = folio_pfn(folio) + i;

	if (!PageAnonExclusive(folio_page(folio, i)))
		return false;
	if (folio_is_device_private(folio)) {
		swp_entry_t entry;

		if (!is_swap_pte(pte) || pte_swp_uffd_wp(pte))
			return false;
		entry = pte_to_swp_entry(pte);
		bits->soft_dirty |= pte_swp_soft_dirty(pte);
		return is_device_private_entry(entry) &&
		       swp_offset_pfn(entry) == pfn &&
		       is_writable_device_private_entry(entry) == bits->write;
	}
	if (!pte_present(pte) || pte_protnone(pte) || pte_uffd_wp(pte) ||
	    pte_pfn(pte) != pfn || pte_write(pte) != bits->write)
		return false;
	bits->dirty |= pte_dirty(pte);
	bits->young |= pte_young(pte);
	bits->soft_dirty |= pte_soft_dirty(pte);
	return true;
}

/* The PMD entry that maps @folio whole, with what its ptes said. */
static pmd_t mdev_pmd_entry(struct vm_area_struct *vma, struct folio *folio,
			    const struct mdev_pmd_bits *bits)
{
	swp_entry_t entry;
	pmd_t pmd;

	if (folio_is_device_private(folio)) {
		entry = bits->write ?
			make_writable_device_private_entry(folio_pfn(folio)) :
			make_readable_device_private_entry(folio_pfn(folio));
		pmd = swp_entry_to_pmd(entry);
		return bits->soft_dirty ? pmd_swp_mksoft_dirty(pmd) : pmd;
	}
	pmd = mk_huge_pmd(&folio->page, vma->vm_page_prot);
	pmd = bits->young ? pmd_mkyoung(pmd) : pmd_mkold(pmd);
	if (bits->dirty)
		pmd = pmd_mkdirty(pmd);
	if (bits->write)
		pmd = maybe_pmd_mkwrite(pmd, vma);
	return bits->soft_dirty ? pmd_mksoft_dirty(pmd) : pmd;
}

/*
 * Replace the ptes at @ptep, which map @folio at @addr, by one PMD entry
 * at @pmdp, if each is the mapping mdev_pte_fits() wants, all of one kind.
 * The emptied PTE table becomes the PMD's deposited table, as for any
 * THP, so that splitting the entry again needs no allocation.  Both table
 * locks are held.
 */
static void mdev_ptes_to_pmd(struct vm_area_struct *vma, unsigned long addr,
			     pmd_t *pmdp, pte_t *ptep, struct folio *folio)
{
	struct mm_struct *mm = vma->vm_mm;
	struct mdev_pmd_bits bits = { };
	pte_t first = ptep_get(ptep);
	pmd_t pmd;
	long i;

	if (pte_present(first))
		bits.write = pte_write(first);
	else if (is_swap_pte(first))
		bits.write = is_writable_device_private_entry(pte_to_swp_entry(first));
	for (i = 0; i < HPAGE_PMD_NR; i++)
		if (!mdev_pte_fits(ptep_get(ptep + i), folio, i, &bits))
			return;

	pmd = pmdp_collapse_flush(vma, addr, pmdp);
	for (i = 0; i < HPAGE_PMD_NR; i++)
		pte_clear(mm, addr + i * PAGE_SIZE, ptep + i);
	pgtable_trans_huge_deposit(mm, pmdp, pmd_pgtable(pmd));

	/* A PMD-mapped folio is exclusive through its head page alone. */
	folio_add_anon_rmap_pmd(folio, &folio->page, vma, addr,
				RMAP_EXCLUSIVE);
	folio_remove_rmap_ptes(folio, &folio->page, HPAGE_PMD_NR, vma);
	for (i = 1; i < HPAGE_PMD_NR; i++)
		ClearPageAnonExclusive(folio_page(folio, i));
	folio_ref_sub(folio, HPAGE_PMD_NR - 1);

	set_pmd_at(mm, addr, pmdp, mdev_pmd_entry(vma, folio, &bits));
	if (!folio_is_device_private(folio))
		update_mmu_cache_pmd(vma, addr, pmdp);
}

/*
 * rmap_walk() callback of mdev_map_pmd(): if @vma maps @folio whole and
 * PMD-aligned at @addr, try to map it by one PMD entry there.  The folio
 * is locked.
 */
static bool mdev_map_pmd_one(struct folio *folio, struct vm_area_struct *vma,
			     unsigned long addr, void *arg)
{
	struct mm_struct *mm = vma->vm_mm;
	spinlock_t *pml, *ptl;	/* of the PMD, of the PTE table */
	pte_t *ptep;
	pmd_t *pmdp;
	pmd_t pmd;

	if (!IS_ALIGNED(addr, PMD_SIZE) || addr < vma->vm_start ||
	    vma->vm_end - addr < PMD_SIZE ||
	    linear_page_index(vma, addr) != folio->index ||
	    (vma->vm_flags & VM_LOCKED) ||
	    !thp_vma_allowable_order(vma, vma->vm_flags, TVA_ENFORCE_SYSFS,
				     HPAGE_PMD_ORDER))
		return true;
	pmdp = mm_find_pmd(mm, addr);
	if (!pmdp)
		return true;

	pml = pmd_lock(mm, pmdp);
	pmd = pmdp_get(pmdp);
	if (pmd_present(pmd) && !pmd_leaf(pmd)) {
		ptl = mdev_lock_table(mm, pmdp, pml);
		ptep = pte_offset_map(pmdp, addr);
		if (ptep) {
			mdev_ptes_to_pmd(vma, addr, pmdp, ptep, folio);
			pte_unmap(ptep);
		}
		mdev_unlock_table(ptl, pml);
	}
	spin_unlock(pml);
	return true;
}

/*
 * @folio, locked, an anonymous folio the size of a PMD, was just mapped
 * again by ptes: by the migration entries of the folio itself, or of the
 * folio it replaced.  Wherever it is now mapped whole and aligned, as a
 * THP would be, map it by one PMD entry instead: a device-private PMD for
 * device-private memory (which the rest of mm splits back into ptes when
 * it needs to look at a part), a huge PMD for a THP of system memory.
 */
static void mdev_map_pmd(struct folio *folio)
{
	struct rmap_walk_control rwc = {
		.rmap_one = mdev_map_pmd_one,
	};

	if (folio_order(folio) != HPAGE_PMD_ORDER || !folio_test_anon(folio) ||
	    !folio_mapped(folio) ||
	    (folio_is_zone_device(folio) && !folio_is_device_private(folio)))
		return;
	rmap_walk(folio, &rwc);
}
#else
static void mdev_map_pmd(struct folio *folio)
{
}
#endif /* CONFIG_ARCH_ENABLE_THP_MIGRATION */

/* Map a source folio back where it was, let it go, clear its entry. */
static void mdev_restore(unsigned long *mpfn, struct folio *folio,
			 bool isolated)
{
	remove_migration_ptes(folio, folio, 0);
	mdev_map_pmd(folio);
	mdev_release_src(folio, isolated);
	*mpfn = 0;
}

/*
 * Unmap the locked, referenced pages of @src_pfns, leaving migration entries
 * (steps 2 to 4 in the comment at the top).  Entries that cannot move are
 * restored, unlocked, released and cleared.  Returns how many pages the
 * entries still migrating cover, empty slots included.
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
			if (src_pfns[i] & MIGRATE_PFN_MIGRATE)
				moving += src_pfns[i] & MIGRATE_PFN_COMPOUND ?
					  MDEV_PMD_NR : 1;
			continue;
		}
		page = migrate_pfn_to_page(src_pfns[i]);
		folio = page_folio(page);

		if (!walked && folio_test_anon(folio) &&
		    !folio_get_anon_vma(folio)) {
			/* Not mapped anywhere any more: nothing to move. */
			mdev_left_folio(folio, MDEV_LEFT_GONE);
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
				mdev_left_folio(folio, MDEV_LEFT_ISOLATE);
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

		/*
		 * A folio the size of a PMD may still be mapped by one
		 * elsewhere (a child after fork(), or any mapping of a
		 * device folio when we start from a pfn): migration entries
		 * are always ptes here, as the folio may come back as small
		 * pages.  A device folio is mapped by a PMD again at
		 * finalize.  A smaller large folio is only ever mapped by
		 * ptes, and the PMD split refuses to be asked about one.
		 */
		if (folio_mapped(folio))
			try_to_migrate(folio, folio_test_pmd_mappable(folio) ?
				       TTU_SPLIT_HUGE_PMD : 0);

		if (folio_mapped(folio) ||
		    !mdev_unpinned(folio, fault_page &&
				   page_folio(fault_page) == folio,
				   &drained)) {
			mdev_left_folio(folio, folio_mapped(folio) ?
					MDEV_LEFT_MAPPED : MDEV_LEFT_PINNED);
			mdev_restore(&src_pfns[i], folio,
				     !folio_is_zone_device(folio));
			continue;
		}
		moving += folio_nr_pages(folio);
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
 * With MIGRATE_VMA_SELECT_COMPOUND in @args->flags, an entry may also carry
 * MIGRATE_PFN_COMPOUND: it stands for a whole large folio (the pfn is its
 * first page's) or for an empty slot the size of a PMD, and the entries of
 * the other pages it covers are zero.  Its destination is a locked folio of
 * the same order with MIGRATE_PFN_COMPOUND set, or order-0 pages in the
 * entries of each page it covers (see "Large folios" in the comment at the
 * top of this file for what then happens).
 *
 * MIGRATE_PFN_WRITE tells that the page was mapped writable.  The dst array
 * is cleared.  The caller then stores in dst the locked destination pages
 * (migrate_pfn() of the pfn; a page for an empty slot is mapped writable
 * when the VMA is, whatever dst says) and calls
 * migrate_vma_pages() and migrate_vma_finalize(), which must always be
 * called after a successful setup, even if nothing is copied.
 *
 * @args->npages is set to the number of pages of the range and
 * @args->cpages to the number of pages covered by entries left with
 * MIGRATE_PFN_MIGRATE (a compound entry counts all its pages).
 *
 * Context: the caller holds the mmap lock of the VMA's mm (read is enough)
 * and may sleep.
 * Return: 0, or -EINVAL when @args is not valid: a missing VMA or array, an
 * unaligned or empty range, a range that is not inside the VMA, or a
 * hugetlb, DAX, VM_IO or VM_PFNMAP VMA.
 */
int migrate_vma_setup(struct migrate_vma *args)
{
	unsigned long npages, collected, split;
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

	split = mvma_collect(args);
	collected = args->cpages;
	trace_migrate_vma_collect(args, collected, split);
	if (args->cpages)
		args->cpages = mdev_unmap(args->src, npages,
					  args->fault_page, true);
	trace_migrate_vma_setup(args, collected, split);
	return 0;
}
EXPORT_SYMBOL(migrate_vma_setup);

/* The entry that maps @page of a new folio for an empty slot. */
static pte_t mvma_new_pte(struct vm_area_struct *vma, struct page *page,
			  bool writable)
{
	swp_entry_t entry;
	pte_t pte;

	if (is_device_private_page(page)) {
		if (writable)
			entry = make_writable_device_private_entry(page_to_pfn(page));
		else
			entry = make_readable_device_private_entry(page_to_pfn(page));
		return swp_entry_to_pte(entry);
	}
	pte = mk_pte(page, vma->vm_page_prot);
	if (writable)
		pte = pte_mkwrite(pte_mkdirty(pte), vma);
	return pte;
}

/*
 * The anonymous rmap of @folio, new, about to be mapped by ptes at @addr.
 * folio_add_new_anon_rmap() takes a folio the size of a PMD for one a PMD
 * maps, so such a folio is set up as a PMD mapping and converted to ptes,
 * the way a PMD mapping is split.
 */
static void mvma_new_anon_rmap(struct folio *folio, struct vm_area_struct *vma,
			       unsigned long addr)
{
	folio_add_new_anon_rmap(folio, vma, addr, RMAP_EXCLUSIVE);
	if (!folio_test_pmd_mappable(folio))
		return;
	folio_add_anon_rmap_ptes(folio, &folio->page, folio_nr_pages(folio),
				 vma, addr, RMAP_EXCLUSIVE);
	folio_remove_rmap_pmd(folio, &folio->page, vma);
}

/*
 * Map @folio, a new folio for the empty slot at @addr (as large as the
 * folio), in @migrate->vma: device-private pages as device-private swap
 * entries, any other as present ptes.  The slot must still be empty
 * (pte_none() or the zero page, or the huge zero page); the folio gets its
 * memcg charge, anonymous rmap and a reference for each pte.  Returns true
 * if it was mapped.
 */
static bool mvma_insert(struct migrate_vma *migrate, unsigned long addr,
			struct folio *folio)
{
	struct vm_area_struct *vma = migrate->vma;
	struct mm_struct *mm = vma->vm_mm;
	long i, nr = folio_nr_pages(folio);
	/*
	 * Drivers (nouveau, amdkfd) give no MIGRATE_PFN_WRITE for an empty
	 * slot: a new page is as writable as the VMA.
	 */
	bool writable = vma->vm_flags & VM_WRITE;
	bool zero = false;
	pte_t *ptep, *start_pte;
	spinlock_t *ptl;	/* of the page table */
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
	if (is_huge_zero_pmd(pmdp_get(pmdp)))
		split_huge_pmd(vma, pmdp, addr);
	/* A huge page was faulted in meanwhile: the slot is not empty. */
	if (pmd_trans_huge(pmdp_get(pmdp)) || pmd_devmap(pmdp_get(pmdp)))
		return false;
	if (pte_alloc(mm, pmdp))
		return false;
	if (unlikely(anon_vma_prepare(vma)))
		return false;
	/* On failure below, the charge goes when the caller frees the folio. */
	if (mem_cgroup_charge(folio, mm, GFP_KERNEL))
		return false;

	/* The contents must be visible before the folio is. */
	__folio_mark_uptodate(folio);

	start_pte = pte_offset_map_lock(mm, pmdp, addr, &ptl);
	if (!start_pte)
		return false;
	if (check_stable_address_space(mm) || userfaultfd_missing(vma))
		goto unlock;
	for (i = 0, ptep = start_pte; i < nr; i++, ptep++) {
		pte_t orig = ptep_get(ptep);

		if (pte_present(orig) && is_zero_pfn(pte_pfn(orig)))
			zero = true;
		else if (!pte_none(orig))
			goto unlock;
	}

	add_mm_counter(mm, MM_ANONPAGES, nr);
	mvma_new_anon_rmap(folio, vma, addr);
	if (!folio_is_zone_device(folio))
		folio_add_lru_vma(folio, vma);
	folio_ref_add(folio, nr);

	if (zero) {
		for (i = 0; i < nr; i++)
			ptep_clear(mm, addr + i * PAGE_SIZE, start_pte + i);
		flush_tlb_range(vma, addr, addr + nr * PAGE_SIZE);
	}
	for (i = 0; i < nr; i++)
		set_pte_at(mm, addr + i * PAGE_SIZE, start_pte + i,
			   mvma_new_pte(vma, folio_page(folio, i), writable));
	if (!folio_is_device_private(folio))
		update_mmu_cache_range(NULL, vma, addr, start_pte, nr);
	pte_unmap_unlock(start_pte, ptl);
	return true;

unlock:
	pte_unmap_unlock(start_pte, ptl);
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

/*
 * Does destination entry @dst fit source entry @src?  It must name the
 * first page of a folio of the source's order (a compound empty slot has
 * the order of a PMD) and carry MIGRATE_PFN_COMPOUND exactly when that
 * order is not zero.
 */
static bool mdev_dst_fits(unsigned long src, unsigned long dst)
{
	struct page *page = migrate_pfn_to_page(src);
	struct page *newpage = migrate_pfn_to_page(dst);
	struct folio *newfolio = page_folio(newpage);
	unsigned int order = 0;

	if (src & MIGRATE_PFN_COMPOUND)
		order = page ? folio_order(page_folio(page)) : MDEV_PMD_ORDER;
	return &newfolio->page == newpage && folio_order(newfolio) == order &&
	       !!(dst & MIGRATE_PFN_COMPOUND) == !!order;
}

/*
 * Are the @nr destinations from @dst_pfns all order-0 pages (or missing,
 * for pages that are to stay), at least one of them there?  Then the
 * compound source they answer is split and its pages move one by one.
 */
static bool mdev_dst_small(const unsigned long *dst_pfns, long nr)
{
	bool any = false;
	long i;

	for (i = 0; i < nr; i++) {
		struct page *newpage = migrate_pfn_to_page(dst_pfns[i]);

		if ((dst_pfns[i] & MIGRATE_PFN_COMPOUND) ||
		    (newpage && folio_test_large(page_folio(newpage))))
			return false;
		any |= !!newpage;
	}
	return any;
}

/*
 * Split @folio, a THP of system memory, locked, isolated and unmapped (its
 * mappings are our migration entries), into order-0 folios that stay
 * locked, isolated and unmapped, each with one reference, as @folio was.
 */
static bool mdev_split_system(struct folio *folio)
{
	struct folio *tail, *next;
	LIST_HEAD(tails);

	if (split_unmapped_anon_folio(folio, &tails))
		return false;
	list_for_each_entry_safe(tail, next, &tails, lru) {
		list_del_init(&tail->lru);
		folio_put(tail);	/* the list's; the one we hold stays */
	}
	return true;
}

/*
 * Split the compound source entry @src_pfns[0], a large folio answered by
 * order-0 destinations, into one entry per page.  Each page keeps the
 * entry's bits and a reference on the anon_vma (see mdev_unmap()).
 * Returns false if the folio cannot be split (it then stays).
 */
static bool mdev_split_entry(unsigned long *src_pfns, struct page *fault_page)
{
	struct folio *folio = page_folio(migrate_pfn_to_page(src_pfns[0]));
	unsigned long bits = src_pfns[0] & (MIGRATE_PFN_MIGRATE |
					    MIGRATE_PFN_WRITE);
	struct anon_vma *anon_vma = folio_anon_vma(folio);
	long i, nr = folio_nr_pages(folio);
	unsigned long pfn = folio_pfn(folio);

	if (folio_is_zone_device(folio) ?
	    !mdev_split_unmapped(folio, fault_page) :
	    !mdev_split_system(folio))
		return false;
	for (i = 0; i < nr; i++) {
		src_pfns[i] = migrate_pfn(pfn + i) | bits;
		if (anon_vma && i)
			get_anon_vma(anon_vma);
	}
	return true;
}

/*
 * Fill the empty slot at @i, of order 0 or (@compound) the size of a PMD:
 * with one folio of its size, or a compound slot page by page with order-0
 * destinations, each entry then standing for itself.  Entries of pages not
 * filled lose MIGRATE_PFN_MIGRATE.  Counted in @t.
 */
static void mvma_fill_slot(struct migrate_vma *migrate, unsigned long i,
			   bool compound, struct mdev_tally *t)
{
	unsigned long addr = migrate->start + (i << PAGE_SHIFT);
	unsigned long *src = &migrate->src[i], *dst = &migrate->dst[i];
	struct page *newpage = migrate_pfn_to_page(dst[0]);
	long j;

	if (newpage && mdev_dst_fits(src[0], dst[0])) {
		if (mvma_insert(migrate, addr, page_folio(newpage))) {
			mdev_tally_moved(t, NULL, page_folio(newpage));
		} else {
			src[0] &= ~MIGRATE_PFN_MIGRATE;
			mdev_tally_left_new(t, newpage, MDEV_LEFT_INSERT);
		}
		return;
	}
	if (!compound || !mdev_dst_small(dst, MDEV_PMD_NR)) {
		src[0] &= ~(MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
		if (newpage)
			mdev_tally_left_new(t, newpage, MDEV_LEFT_BAD_DST);
		return;
	}
	for (j = 0; j < MDEV_PMD_NR; j++) {
		newpage = migrate_pfn_to_page(dst[j]);
		src[j] = 0;
		if (!newpage)
			continue;
		if (mvma_insert(migrate, addr + j * PAGE_SIZE,
				page_folio(newpage))) {
			src[j] = MIGRATE_PFN_MIGRATE;
			mdev_tally_moved(t, NULL, page_folio(newpage));
		} else {
			mdev_tally_left_new(t, newpage, MDEV_LEFT_INSERT);
		}
	}
}

/*
 * Why may source entry @src, a page whose destination @dst fits, not move?
 * mdev_move_identity() refused it: both folios are still locked.
 */
static enum mdev_left_reason mdev_move_refused(unsigned long src,
					       unsigned long dst)
{
	struct folio *folio = page_folio(migrate_pfn_to_page(src));

	if (folio_is_zone_device(page_folio(migrate_pfn_to_page(dst))) &&
	    folio_test_swapcache(folio))
		return MDEV_LEFT_SWAPCACHE;
	return MDEV_LEFT_PINNED;
}

/*
 * Step 4 of the comment at the top, for every entry: the work of
 * migrate_vma_pages() (@migrate) and migrate_device_pages() (@migrate
 * NULL), counted as it goes (mdev_watch_pages()).
 */
static void mdev_pages(unsigned long *src_pfns,
		       unsigned long *dst_pfns,
		       unsigned long npages,
		       struct migrate_vma *migrate)
{
	struct page *fault_page = migrate ? migrate->fault_page : NULL;
	struct mdev_tally t = { };
	struct mmu_notifier_range range;
	bool notified = false;
	unsigned long i;

	for (i = 0; i < npages; i++) {
		struct page *newpage = migrate_pfn_to_page(dst_pfns[i]);
		struct page *page = migrate_pfn_to_page(src_pfns[i]);
		bool compound = src_pfns[i] & MIGRATE_PFN_COMPOUND;
		enum mdev_left_reason why;
		long nr = 1;

		if (!(src_pfns[i] & MIGRATE_PFN_MIGRATE))
			continue;
		/*
		 * The entries a compound entry covers follow it when it comes
		 * from a virtual range or a pfn range, not when it comes from
		 * a set of pfns: they are only used (to fill or split it page
		 * by page) when they are all there.
		 */
		if (compound)
			nr = page ? folio_nr_pages(page_folio(page)) :
				    MDEV_PMD_NR;
		if (nr > npages - i)
			nr = 0;

		if (!page) {
			/* Empty slots only exist for a virtual range. */
			if (!migrate || (!newpage && !compound) || !nr) {
				src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
				if (migrate && newpage)
					mdev_tally_left_new(&t, newpage,
							    MDEV_LEFT_BAD_DST);
				continue;
			}
			/*
			 * Filling a slot that holds the zero page changes
			 * what secondary MMUs may have mapped.
			 */
			if (!notified) {
				mvma_notify_from(migrate, migrate->start +
						 (i << PAGE_SHIFT), &range);
				notified = true;
			}
			mvma_fill_slot(migrate, i, compound, &t);
			/*
			 * A compound slot filled page by page has the entries
			 * it covers marked MIGRATE_PFN_MIGRATE for the
			 * driver: they are done, not slots to fill.
			 */
			i += nr - 1;
			continue;
		}

		if (compound && nr && (!newpage ||
				       !mdev_dst_fits(src_pfns[i],
						      dst_pfns[i])) &&
		    mdev_dst_small(&dst_pfns[i], nr)) {
			if (mdev_split_entry(&src_pfns[i], fault_page)) {
				t.split++;
				/* look at the entry again, as an order-0 one */
				i--;
				continue;
			}
			why = MDEV_LEFT_SPLIT;
		} else if (!newpage) {
			why = MDEV_LEFT_NO_DST;
		} else if (!mdev_dst_fits(src_pfns[i], dst_pfns[i])) {
			why = MDEV_LEFT_BAD_DST;
		} else if (mdev_move_identity(page_folio(newpage),
					      page_folio(page),
					      page_folio(page) ==
					      (fault_page ?
					       page_folio(fault_page) :
					       NULL))) {
			mdev_tally_moved(&t, page, page_folio(newpage));
			continue;
		} else {
			why = mdev_move_refused(src_pfns[i], dst_pfns[i]);
		}
		src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
		mdev_tally_left(&t, page_to_pfn(page),
				compound ? folio_nr_pages(page_folio(page)) : 1,
				why);
	}

	if (notified)
		mmu_notifier_invalidate_range_end(&range);
	mdev_watch_pages(&t, npages, !!migrate);
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
				mdev_map_pmd(newfolio);
				folio_unlock(newfolio);
				folio_put(newfolio);
			}
			continue;
		}

		folio = page_folio(page);
		moved = newfolio && (src_pfns[i] & MIGRATE_PFN_MIGRATE);
		remove_migration_ptes(folio, moved ? newfolio : folio, 0);
		mdev_map_pmd(moved ? newfolio : folio);
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
	mdev_watch_finalize(migrate->src, migrate->dst, migrate->npages, true);
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
	mdev_watch_finalize(src_pfns, dst_pfns, npages, false);
	mdev_finalize(src_pfns, dst_pfns, npages);
}
EXPORT_SYMBOL(migrate_device_finalize);

/*
 * Take device page @pfn for a migration by pfn: a reference and its lock,
 * waiting for the lock (the caller holds no other).  A free page (no
 * reference) is not selected; a large folio is selected as one compound
 * entry at its first page, and not at all through its other pages.
 * Returns the page's source entry.
 */
static unsigned long mdev_select(unsigned long pfn)
{
	struct page *page = pfn_to_page(pfn);
	struct folio *folio = page_folio(page);
	unsigned long mpfn = migrate_pfn(pfn) | MIGRATE_PFN_MIGRATE;

	if (!folio_try_get(folio))
		return 0;
	/* split or freed and handed out again before we got it */
	if (page_folio(page) != folio || &folio->page != page) {
		folio_put(folio);
		return 0;
	}
	folio_lock(folio);
	if (folio_test_large(folio))
		mpfn |= MIGRATE_PFN_COMPOUND;
	return mpfn;
}

/**
 * migrate_device_range() - select a range of device memory for eviction
 * @src_pfns: array of @npages entries, filled with migrate pfns
 * @start: first pfn of the range (device-private or device-coherent memory)
 * @npages: number of pages
 *
 * Every page of the range that is in use (a free page has no reference and
 * is skipped) is locked, waiting for it if need be, and unmapped from every
 * process that maps it, leaving migration entries.  A large folio is
 * selected as one entry at its first page, with MIGRATE_PFN_COMPOUND, the
 * entries of its other pages left zero; one whose first page is not in the
 * range is not selected.  Pages that cannot move
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
	unsigned long i, selected, cpages;

	for (i = 0; i < npages; i++)
		src_pfns[i] = mdev_select(start + i);
	selected = mdev_watch_selected(src_pfns, npages);
	cpages = mdev_unmap(src_pfns, npages, NULL, false);
	trace_migrate_device_range(start, npages, selected, cpages);
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
 * one.  Each pfn must appear once.  A large folio is selected through its
 * first page, as one entry with MIGRATE_PFN_COMPOUND (the entries that
 * follow keep their own pfns, so its destination must be a folio of the
 * same order); naming one of its other pages selects nothing.  The migration is completed with
 * migrate_device_pages() and migrate_device_finalize().
 *
 * Context: may sleep; no page of the set may be locked by the caller.
 * Return: 0.
 */
int migrate_device_pfns(unsigned long *src_pfns, unsigned long npages)
{
	unsigned long i, first = npages ? src_pfns[0] : 0, selected, cpages;

	for (i = 0; i < npages; i++)
		src_pfns[i] = mdev_select(src_pfns[i]);
	selected = mdev_watch_selected(src_pfns, npages);
	cpages = mdev_unmap(src_pfns, npages, NULL, false);
	trace_migrate_device_pfns(first, npages, selected, cpages);
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
