/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * HMM: mirroring a process address space into a device page table.
 *
 * A driver that keeps its own page table for a process (a GPU, an RDMA NIC
 * doing on-demand paging, ...) describes a virtual range with a struct
 * hmm_range and asks hmm_range_fault() for one word per page saying what
 * the CPU page table maps there.  Staleness is detected with the range's
 * mmu_interval_notifier: the driver samples the notifier sequence before
 * the call and checks it again, under its own page-table lock, before it
 * programs the device.  Documentation/mm/hmm.rst shows the whole pattern.
 */
#ifndef LINUX_HMM_H
#define LINUX_HMM_H

#include <linux/mm.h>
#include <linux/mmu_notifier.h>

/**
 * enum hmm_pfn_flags - the flag bits of an hmm_range_fault() entry
 * @HMM_PFN_VALID: the entry holds a pfn the CPU maps (at least readable)
 * @HMM_PFN_WRITE: the CPU mapping is writable; only with @HMM_PFN_VALID
 * @HMM_PFN_ERROR: the address cannot be mirrored (no VMA, PROT_NONE,
 *	VM_IO/VM_PFNMAP, a special pfn without a struct page, poison)
 * @HMM_PFN_DMA_MAPPED: sticky: the driver has a DMA mapping for this
 *	entry (set and cleared by hmm_dma_map_pfn() and hmm_dma_unmap_pfn())
 * @HMM_PFN_P2PDMA: sticky: the mapping is peer-to-peer through the host
 *	bridge
 * @HMM_PFN_P2PDMA_BUS: sticky: the mapping is a PCI bus address, nothing
 *	to unmap
 * @HMM_PFN_ORDER_SHIFT: position of the five-bit field giving the order
 *	of the CPU mapping the page is part of (0 for a PTE, 9 for a 2 MiB
 *	PMD on x86, ...); read it with hmm_pfn_to_map_order()
 * @HMM_PFN_REQ_FAULT: input: the device needs this page present, fault it
 *	in if the CPU page table does not map it
 * @HMM_PFN_REQ_WRITE: input: with @HMM_PFN_REQ_FAULT, the device needs
 *	write access, so break copy-on-write and fault for write
 * @HMM_PFN_REQ_FOLIO_ORDER: input, in hmm_range.default_flags only: also
 *	report in the order field the order of a large folio that PTEs map
 *	whole, in order, naturally aligned and all with the same rights (a
 *	device folio of the caller's, a THP split to PTEs, a large anonymous
 *	folio), so that a device with large pages can map it at once.
 *	Without it only PMD and PUD mappings carry an order, as always.
 * @HMM_PFN_FLAGS: every bit that is not part of the pfn
 *
 * Each entry of hmm_range.hmm_pfns is an unsigned long: the page frame
 * number in the low bits, the flags in the top eleven.  On output an entry
 * is 0 (nothing mapped and no fault was asked for), %HMM_PFN_ERROR, or a
 * pfn with %HMM_PFN_VALID and possibly %HMM_PFN_WRITE and an order; the
 * sticky bits (%HMM_PFN_INOUT_FLAGS) are kept as the driver left them, so
 * an array can hold both the mirror and the driver's DMA state.
 *
 * The request bits reuse the output bit positions so that a driver can feed
 * the previous output of a range back in as input.  The positions of the
 * valid, write and error bits are those of every kernel since 5.10; the
 * order field moved down in 6.16 to make room for the sticky bits, so
 * read it with hmm_pfn_to_map_order() and the pfn with hmm_pfn_to_page()
 * or hmm_pfn_to_phys(), never by shifting.
 */
enum hmm_pfn_flags {
	/* output */
	HMM_PFN_VALID		= 1UL << (BITS_PER_LONG - 1),
	HMM_PFN_WRITE		= 1UL << (BITS_PER_LONG - 2),
	HMM_PFN_ERROR		= 1UL << (BITS_PER_LONG - 3),

	/* sticky: carried from input to output */
	HMM_PFN_DMA_MAPPED	= 1UL << (BITS_PER_LONG - 4),
	HMM_PFN_P2PDMA		= 1UL << (BITS_PER_LONG - 5),
	HMM_PFN_P2PDMA_BUS	= 1UL << (BITS_PER_LONG - 6),

	HMM_PFN_ORDER_SHIFT	= (BITS_PER_LONG - 11),

	/* input */
	HMM_PFN_REQ_FAULT	= HMM_PFN_VALID,
	HMM_PFN_REQ_WRITE	= HMM_PFN_WRITE,
	HMM_PFN_REQ_FOLIO_ORDER	= HMM_PFN_ERROR,

	HMM_PFN_FLAGS		= ~((1UL << HMM_PFN_ORDER_SHIFT) - 1),
};

/* The sticky bits hmm_range_fault() leaves as it finds them. */
#define HMM_PFN_INOUT_FLAGS	(HMM_PFN_DMA_MAPPED | HMM_PFN_P2PDMA | \
				 HMM_PFN_P2PDMA_BUS)

/* Width of the order field; orders up to 31 fit. */
#define HMM_PFN_ORDER_MASK	0x1FUL

/*
 * How long, in milliseconds, a driver typically keeps retrying
 * hmm_range_fault() on -EBUSY before it gives up on the range.
 */
#define HMM_RANGE_DEFAULT_TIMEOUT 1000

/**
 * hmm_pfn_to_page() - the struct page of a valid hmm_range_fault() entry
 * @hmm_pfn: an output entry with %HMM_PFN_VALID set
 *
 * Return: the page; meaningless for an entry without %HMM_PFN_VALID.  No
 * reference is taken: the page may only be used while the range's notifier
 * sequence is still current.
 */
static inline struct page *hmm_pfn_to_page(unsigned long hmm_pfn)
{
	return pfn_to_page(hmm_pfn & ~HMM_PFN_FLAGS);
}

/**
 * hmm_pfn_to_phys() - the physical address of a valid hmm_range_fault() entry
 * @hmm_pfn: an output entry with %HMM_PFN_VALID set
 *
 * Return: the physical address of the start of the page.
 */
static inline phys_addr_t hmm_pfn_to_phys(unsigned long hmm_pfn)
{
	return PFN_PHYS(hmm_pfn & ~HMM_PFN_FLAGS);
}

/**
 * hmm_pfn_to_map_order() - order of the CPU mapping behind an entry
 * @hmm_pfn: an output entry with %HMM_PFN_VALID set
 *
 * The CPU maps the page as part of a naturally aligned block of
 * 2^order pages (a THP or hugetlb page mapped by one PMD or PUD entry).
 * A device with large pages of its own may map the whole block at once:
 * every page of the block inside the range has the same flags.
 *
 * Return: the order, 0 for a page mapped by a PTE.
 */
static inline unsigned int hmm_pfn_to_map_order(unsigned long hmm_pfn)
{
	return (hmm_pfn >> HMM_PFN_ORDER_SHIFT) & HMM_PFN_ORDER_MASK;
}

/**
 * struct hmm_range - a virtual range to mirror, and its result
 * @notifier: interval notifier covering the range; its mm is the one walked
 * @notifier_seq: value of mmu_interval_read_begin() sampled for this call
 * @start: first virtual address, page aligned
 * @end: address after the last page, page aligned, above @start
 * @hmm_pfns: one entry per page of [@start, @end): request flags in, result
 *	out (see &enum hmm_pfn_flags)
 * @default_flags: request flags applied to every page
 * @pfn_flags_mask: request bits taken from each entry of @hmm_pfns on input
 * @dev_private_owner: the caller's pgmap owner; DEVICE_PRIVATE pages whose
 *	pgmap has this owner are reported in place instead of being faulted
 *	back to system memory
 *
 * The request of page i is
 * (@default_flags | (@hmm_pfns[i] & @pfn_flags_mask)) masked to the
 * request bits: a driver that treats the whole range alike sets
 * @default_flags and leaves @pfn_flags_mask at 0.
 */
struct hmm_range {
	struct mmu_interval_notifier *notifier;
	unsigned long		notifier_seq;
	unsigned long		start;
	unsigned long		end;
	unsigned long		*hmm_pfns;
	unsigned long		default_flags;
	unsigned long		pfn_flags_mask;
	void			*dev_private_owner;
};

int hmm_range_fault(struct hmm_range *range);

#endif /* LINUX_HMM_H */
