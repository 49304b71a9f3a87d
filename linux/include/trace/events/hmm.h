/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Trace events of hmm_range_fault() (mm/hmm.c).  Documentation/mm/hmm.rst,
 * "Watching HMM", says how to use them.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM hmm

#if !defined(_TRACE_HMM_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TRACE_HMM_H

#include <linux/hmm.h>
#include <linux/tracepoint.h>

/* hmm_range_fault_start: a call begins, with what it asks for. */
TRACE_EVENT(hmm_range_fault_start,
	    TP_PROTO(const struct hmm_range *range),
	    TP_ARGS(range),
	    TP_STRUCT__entry(__field(unsigned long, start)
			     __field(unsigned long, end)
			     __field(unsigned long, default_flags)
			     __field(unsigned long, pfn_flags_mask)
	    ),
	    TP_fast_assign(__entry->start = range->start;
			   __entry->end = range->end;
			   __entry->default_flags = range->default_flags;
			   __entry->pfn_flags_mask = range->pfn_flags_mask;
	    ),
	    TP_printk("start=0x%lx end=0x%lx default_flags=0x%lx pfn_flags_mask=0x%lx",
		      __entry->start, __entry->end, __entry->default_flags,
		      __entry->pfn_flags_mask)
);

/*
 * hmm_range_fault_run: the walk found [start, end) needing faults; @faulted
 * of its pages were faulted in (all of them unless @ret, the error that
 * ends the call, is not 0).
 */
TRACE_EVENT(hmm_range_fault_run,
	    TP_PROTO(unsigned long start, unsigned long end,
		     unsigned long faulted, int ret),
	    TP_ARGS(start, end, faulted, ret),
	    TP_STRUCT__entry(__field(unsigned long, start)
			     __field(unsigned long, end)
			     __field(unsigned long, faulted)
			     __field(int, ret)
	    ),
	    TP_fast_assign(__entry->start = start;
			   __entry->end = end;
			   __entry->faulted = faulted;
			   __entry->ret = ret;
	    ),
	    TP_printk("start=0x%lx end=0x%lx faulted=%lu ret=%d",
		      __entry->start, __entry->end, __entry->faulted,
		      __entry->ret)
);

/*
 * hmm_range_fault_end: the call returns @ret, having faulted @faulted of
 * the range's pages and walked the page tables again @restarts times after
 * faults.
 */
TRACE_EVENT(hmm_range_fault_end,
	    TP_PROTO(const struct hmm_range *range, int ret,
		     unsigned long faulted, unsigned int restarts),
	    TP_ARGS(range, ret, faulted, restarts),
	    TP_STRUCT__entry(__field(unsigned long, start)
			     __field(unsigned long, end)
			     __field(unsigned long, faulted)
			     __field(unsigned int, restarts)
			     __field(int, ret)
	    ),
	    TP_fast_assign(__entry->start = range->start;
			   __entry->end = range->end;
			   __entry->faulted = faulted;
			   __entry->restarts = restarts;
			   __entry->ret = ret;
	    ),
	    TP_printk("start=0x%lx end=0x%lx npages=%lu ret=%d faulted=%lu restarts=%u",
		      __entry->start, __entry->end,
		      (__entry->end - __entry->start) >> PAGE_SHIFT,
		      __entry->ret, __entry->faulted, __entry->restarts)
);

#endif /* _TRACE_HMM_H */

/* This part must be outside protection */
#include <trace/define_trace.h>
