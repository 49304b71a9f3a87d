/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Trace events of device memory migration (mm/migrate_device.c) and of the
 * CPU faults that bring device-private pages back (migrate_to_ram()).
 * Documentation/mm/hmm.rst, "Watching HMM", says how to use them.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM migrate_device

#ifndef _MIGRATE_DEVICE_LEFT_REASON
#define _MIGRATE_DEVICE_LEFT_REASON
/**
 * enum mdev_left_reason - why a page a migration met stayed where it was
 * @MDEV_LEFT_PINNED: somebody else holds a reference the migration cannot
 *	account for (a GUP pin, or a reference taken while it ran), or the
 *	page may be pinned and its mapping cannot give up exclusivity
 * @MDEV_LEFT_LOCKED: the page was locked by somebody else when the walk
 *	met it (the walk only trylocks)
 * @MDEV_LEFT_MAPPED: a mapping of the page could not be replaced by a
 *	migration entry (try_to_migrate() left it mapped)
 * @MDEV_LEFT_ISOLATE: the system page could not be taken off the LRU
 * @MDEV_LEFT_SPLIT: a large folio had to be split and could not be (it is
 *	pinned, locked or otherwise busy)
 * @MDEV_LEFT_NO_DST: the driver gave no destination page (its allocation
 *	failed, or it chose not to move this one)
 * @MDEV_LEFT_BAD_DST: the destination does not fit the source (a folio of
 *	another order)
 * @MDEV_LEFT_SWAPCACHE: the page is in the swap cache and could not leave
 *	it, which device memory cannot join
 * @MDEV_LEFT_INSERT: an empty slot could not take its new page (a page
 *	table or memcg charge could not be had, or the slot was filled
 *	meanwhile)
 * @MDEV_LEFT_GONE: a device page selected by pfn was mapped nowhere any
 *	more: there was nothing to move
 * @MDEV_LEFT_NR: number of reasons
 *
 * The hmm_migrate_left_* counters of /proc/vmstat follow this order.
 */
enum mdev_left_reason {
	MDEV_LEFT_PINNED,
	MDEV_LEFT_LOCKED,
	MDEV_LEFT_MAPPED,
	MDEV_LEFT_ISOLATE,
	MDEV_LEFT_SPLIT,
	MDEV_LEFT_NO_DST,
	MDEV_LEFT_BAD_DST,
	MDEV_LEFT_SWAPCACHE,
	MDEV_LEFT_INSERT,
	MDEV_LEFT_GONE,
	MDEV_LEFT_NR
};
#endif /* _MIGRATE_DEVICE_LEFT_REASON */

#if !defined(_TRACE_MIGRATE_DEVICE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TRACE_MIGRATE_DEVICE_H

#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/tracepoint.h>

/* Tell user space the values of the reasons, for filters. */
TRACE_DEFINE_ENUM(MDEV_LEFT_PINNED);
TRACE_DEFINE_ENUM(MDEV_LEFT_LOCKED);
TRACE_DEFINE_ENUM(MDEV_LEFT_MAPPED);
TRACE_DEFINE_ENUM(MDEV_LEFT_ISOLATE);
TRACE_DEFINE_ENUM(MDEV_LEFT_SPLIT);
TRACE_DEFINE_ENUM(MDEV_LEFT_NO_DST);
TRACE_DEFINE_ENUM(MDEV_LEFT_BAD_DST);
TRACE_DEFINE_ENUM(MDEV_LEFT_SWAPCACHE);
TRACE_DEFINE_ENUM(MDEV_LEFT_INSERT);
TRACE_DEFINE_ENUM(MDEV_LEFT_GONE);

/*
 * The first step by virtual range, in pages: migrate_vma_collect when the
 * page-table walk of migrate_vma_setup() is done, @collected pages selected
 * (locked and unmapped here, or empty slots) and @split large folios split
 * on the way so that their pages could be selected one by one;
 * migrate_vma_setup when it returns, cpages of them still on their way,
 * the others left while unmapping.
 */
DECLARE_EVENT_CLASS(mvma_select,
		    TP_PROTO(const struct migrate_vma *args,
			     unsigned long collected, unsigned long split),
		    TP_ARGS(args, collected, split),
		    TP_STRUCT__entry(__field(unsigned long, start)
				     __field(unsigned long, end)
				     __field(unsigned long, flags)
				     __field(unsigned long, npages)
				     __field(unsigned long, collected)
				     __field(unsigned long, cpages)
				     __field(unsigned long, split)
		    ),
		    TP_fast_assign(__entry->start = args->start;
				   __entry->end = args->end;
				   __entry->flags = args->flags;
				   __entry->npages = args->npages;
				   __entry->collected = collected;
				   __entry->cpages = args->cpages;
				   __entry->split = split;
		    ),
		    TP_printk("start=0x%lx end=0x%lx flags=0x%lx npages=%lu collected=%lu cpages=%lu left=%lu split=%lu",
			      __entry->start, __entry->end, __entry->flags,
			      __entry->npages, __entry->collected,
			      __entry->cpages,
			      __entry->collected - __entry->cpages,
			      __entry->split)
);

DEFINE_EVENT(mvma_select, migrate_vma_collect,
	     TP_PROTO(const struct migrate_vma *args, unsigned long collected,
		      unsigned long split),
	     TP_ARGS(args, collected, split)
);

DEFINE_EVENT(mvma_select, migrate_vma_setup,
	     TP_PROTO(const struct migrate_vma *args, unsigned long collected,
		      unsigned long split),
	     TP_ARGS(args, collected, split)
);

/* The selection of device pages by pfn: migrate_device_range() and _pfns(). */
DECLARE_EVENT_CLASS(mdev_select,
		    TP_PROTO(unsigned long pfn, unsigned long npages,
			     unsigned long selected, unsigned long cpages),
		    TP_ARGS(pfn, npages, selected, cpages),
		    TP_STRUCT__entry(__field(unsigned long, pfn)
				     __field(unsigned long, npages)
				     __field(unsigned long, selected)
				     __field(unsigned long, cpages)
		    ),
		    TP_fast_assign(__entry->pfn = pfn;
				   __entry->npages = npages;
				   __entry->selected = selected;
				   __entry->cpages = cpages;
		    ),
		    TP_printk("pfn=0x%lx npages=%lu selected=%lu cpages=%lu left=%lu",
			      __entry->pfn, __entry->npages, __entry->selected,
			      __entry->cpages,
			      __entry->selected - __entry->cpages)
);

DEFINE_EVENT(mdev_select, migrate_device_range,
	     TP_PROTO(unsigned long pfn, unsigned long npages,
		      unsigned long selected, unsigned long cpages),
	     TP_ARGS(pfn, npages, selected, cpages)
);

DEFINE_EVENT(mdev_select, migrate_device_pfns,
	     TP_PROTO(unsigned long pfn, unsigned long npages,
		      unsigned long selected, unsigned long cpages),
	     TP_ARGS(pfn, npages, selected, cpages)
);

/*
 * The pages step, by virtual range or by pfn, in pages: @moved pages have a
 * destination and will move, @left stay, and @split large folios were
 * split because the driver answered them with small pages.
 */
DECLARE_EVENT_CLASS(mdev_pages_step,
		    TP_PROTO(unsigned long npages, unsigned long moved,
			     unsigned long left, unsigned long split),
		    TP_ARGS(npages, moved, left, split),
		    TP_STRUCT__entry(__field(unsigned long, npages)
				     __field(unsigned long, moved)
				     __field(unsigned long, left)
				     __field(unsigned long, split)
		    ),
		    TP_fast_assign(__entry->npages = npages;
				   __entry->moved = moved;
				   __entry->left = left;
				   __entry->split = split;
		    ),
		    TP_printk("npages=%lu moved=%lu left=%lu split=%lu",
			      __entry->npages, __entry->moved, __entry->left,
			      __entry->split)
);

DEFINE_EVENT(mdev_pages_step, migrate_vma_pages,
	     TP_PROTO(unsigned long npages, unsigned long moved,
		      unsigned long left, unsigned long split),
	     TP_ARGS(npages, moved, left, split)
);

DEFINE_EVENT(mdev_pages_step, migrate_device_pages,
	     TP_PROTO(unsigned long npages, unsigned long moved,
		      unsigned long left, unsigned long split),
	     TP_ARGS(npages, moved, left, split)
);

/*
 * The last step, by virtual range or by pfn, in pages: @moved pages are
 * mapped at their destination, @left are mapped back where they were.
 * Nothing is split any more by then: the pages step's record (@split
 * always 0) printed without it.
 */
DEFINE_EVENT_PRINT(mdev_pages_step, migrate_vma_finalize,
		   TP_PROTO(unsigned long npages, unsigned long moved,
			    unsigned long left, unsigned long split),
		   TP_ARGS(npages, moved, left, split),
		   TP_printk("npages=%lu moved=%lu left=%lu", __entry->npages,
			     __entry->moved, __entry->left)
);

DEFINE_EVENT_PRINT(mdev_pages_step, migrate_device_finalize,
		   TP_PROTO(unsigned long npages, unsigned long moved,
			    unsigned long left, unsigned long split),
		   TP_ARGS(npages, moved, left, split),
		   TP_printk("npages=%lu moved=%lu left=%lu", __entry->npages,
			     __entry->moved, __entry->left)
);

/*
 * migrate_device_left: @nr pages from @pfn (one page, or a large folio
 * taken whole) stay where they are, for @reason.  For an empty slot whose
 * new page could not be mapped, @pfn is the new page's.
 */
TRACE_EVENT(migrate_device_left,
	    TP_PROTO(unsigned long pfn, unsigned long nr,
		     enum mdev_left_reason reason),
	    TP_ARGS(pfn, nr, reason),
	    TP_STRUCT__entry(__field(unsigned long, pfn)
			     __field(unsigned long, nr)
			     __field(unsigned int, reason)
	    ),
	    TP_fast_assign(__entry->pfn = pfn;
			   __entry->nr = nr;
			   __entry->reason = reason;
	    ),
	    TP_printk("pfn=0x%lx nr=%lu reason=%s", __entry->pfn, __entry->nr,
		      __print_symbolic(__entry->reason,
				       { MDEV_LEFT_PINNED, "pinned" },
				       { MDEV_LEFT_LOCKED, "locked" },
				       { MDEV_LEFT_MAPPED, "mapped" },
				       { MDEV_LEFT_ISOLATE, "isolate" },
				       { MDEV_LEFT_SPLIT, "split" },
				       { MDEV_LEFT_NO_DST, "no_dst" },
				       { MDEV_LEFT_BAD_DST, "bad_dst" },
				       { MDEV_LEFT_SWAPCACHE, "swapcache" },
				       { MDEV_LEFT_INSERT, "insert" },
				       { MDEV_LEFT_GONE, "gone" }))
);

/* migrate_device_split: a device folio of @order was split into pages. */
TRACE_EVENT(migrate_device_split,
	    TP_PROTO(unsigned long pfn, unsigned int order),
	    TP_ARGS(pfn, order),
	    TP_STRUCT__entry(__field(unsigned long, pfn)
			     __field(unsigned int, order)
	    ),
	    TP_fast_assign(__entry->pfn = pfn;
			   __entry->order = order;
	    ),
	    TP_printk("pfn=0x%lx order=%u", __entry->pfn, __entry->order)
);

/* A CPU fault on a device-private page, handed to its migrate_to_ram(). */
TRACE_EVENT(migrate_to_ram_start,
	    TP_PROTO(const struct vm_fault *vmf),
	    TP_ARGS(vmf),
	    TP_STRUCT__entry(__field(unsigned long, address)
			     __field(unsigned long, pfn)
			     __field(unsigned int, flags)
	    ),
	    TP_fast_assign(__entry->address = vmf->address;
			   __entry->pfn = page_to_pfn(vmf->page);
			   __entry->flags = vmf->flags;
	    ),
	    TP_printk("address=0x%lx pfn=0x%lx flags=0x%x", __entry->address,
		      __entry->pfn, __entry->flags)
);

/* ... and what migrate_to_ram() returned (a vm_fault_t, 0 when done). */
TRACE_EVENT(migrate_to_ram_end,
	    TP_PROTO(const struct vm_fault *vmf, vm_fault_t ret),
	    TP_ARGS(vmf, ret),
	    TP_STRUCT__entry(__field(unsigned long, address)
			     __field(unsigned long, pfn)
			     __field(unsigned int, ret)
	    ),
	    TP_fast_assign(__entry->address = vmf->address;
			   __entry->pfn = page_to_pfn(vmf->page);
			   __entry->ret = (__force unsigned int)ret;
	    ),
	    TP_printk("address=0x%lx pfn=0x%lx ret=0x%x", __entry->address,
		      __entry->pfn, __entry->ret)
);

#endif /* _TRACE_MIGRATE_DEVICE_H */

/* This part must be outside protection */
#include <trace/define_trace.h>
