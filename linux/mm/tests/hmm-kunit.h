/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KUnit cases for mm/hmm.c, included at the end of that file so they can
 * call its static helpers.
 *
 * They cover what can be checked without a process: the HMM_PFN_* encoding
 * drivers decode, the request computed for each page from default_flags and
 * pfn_flags_mask, when a CPU state satisfies a request, how page-table
 * entries of each kind are described, and how a run of pages that need a
 * fault is cut out of a range.  Walking real page tables is left to the
 * selftests (tools/testing/selftests/mm/hmm-tests.c), which drive every
 * kind of entry through lib/test_hmm.c.
 */
#ifndef _MM_TESTS_HMM_KUNIT_H
#define _MM_TESTS_HMM_KUNIT_H

#include <kunit/device.h>
#include <linux/dma-direct.h>
#include <kunit/test.h>

#define HK_NPAGES	8
#define HK_START	0x7f0000000000UL

static void pfn_flag_bits_keep_their_places(struct kunit *test)
{
	unsigned long order_field = HMM_PFN_ORDER_MASK << HMM_PFN_ORDER_SHIFT;
	unsigned long fixed = HMM_PFN_VALID | HMM_PFN_WRITE | HMM_PFN_ERROR;

	/*
	 * The valid, write and error bits where every driver since 5.10
	 * finds them; 6.16's sticky bits and order field below them.
	 */
	static const struct {
		unsigned long flag;
		unsigned long want;
	} bits[] = {
		{ HMM_PFN_VALID, 1UL << (BITS_PER_LONG - 1) },
		{ HMM_PFN_WRITE, 1UL << (BITS_PER_LONG - 2) },
		{ HMM_PFN_ERROR, 1UL << (BITS_PER_LONG - 3) },
		{ HMM_PFN_DMA_MAPPED, 1UL << (BITS_PER_LONG - 4) },
		{ HMM_PFN_P2PDMA, 1UL << (BITS_PER_LONG - 5) },
		{ HMM_PFN_P2PDMA_BUS, 1UL << (BITS_PER_LONG - 6) },
		{ HMM_PFN_ORDER_SHIFT, BITS_PER_LONG - 11 },
		{ HMM_PFN_REQ_FAULT, HMM_PFN_VALID },
		{ HMM_PFN_REQ_WRITE, HMM_PFN_WRITE },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bits); i++)
		KUNIT_EXPECT_EQ_MSG(test, bits[i].flag, bits[i].want,
				    "entry %u", i);

	/* the flags own the top eleven bits and nothing else */
	KUNIT_EXPECT_EQ(test, (unsigned long)HMM_PFN_FLAGS,
			~0UL << (BITS_PER_LONG - 11));
	KUNIT_EXPECT_EQ(test, HMM_PFN_FLAGS & (fixed | HMM_PFN_INOUT_FLAGS |
					       order_field),
			fixed | HMM_PFN_INOUT_FLAGS | order_field);
	/* no two fields overlap */
	KUNIT_EXPECT_EQ(test, order_field & (fixed | HMM_PFN_INOUT_FLAGS),
			0UL);
	KUNIT_EXPECT_EQ(test, fixed & HMM_PFN_INOUT_FLAGS, 0UL);
	/* every pfn this architecture can have fits below the flags */
	KUNIT_EXPECT_EQ(test, PHYS_PFN(1ULL << MAX_PHYSMEM_BITS) &
			HMM_PFN_FLAGS, 0UL);
}

static void map_order_reads_the_order_field(struct kunit *test)
{
	unsigned int order;

	for (order = 0; order <= HMM_PFN_ORDER_MASK; order++) {
		unsigned long e = 0x12345UL | HMM_PFN_VALID | HMM_PFN_WRITE |
				  hmm_order_bits(order);

		KUNIT_EXPECT_EQ(test, hmm_pfn_to_map_order(e), order);
		KUNIT_EXPECT_EQ(test, e & ~HMM_PFN_FLAGS, 0x12345UL);
	}
	/* flags alone give order 0 */
	KUNIT_EXPECT_EQ(test, hmm_pfn_to_map_order(HMM_PFN_VALID |
						   HMM_PFN_WRITE |
						   HMM_PFN_ERROR), 0U);
}

static void pfn_entry_gives_page_and_address(struct kunit *test)
{
	struct page *page = alloc_page(GFP_KERNEL);
	unsigned long e;

	KUNIT_ASSERT_NOT_NULL(test, page);
	e = page_to_pfn(page) | HMM_PFN_VALID | HMM_PFN_WRITE |
	    hmm_order_bits(PMD_SHIFT - PAGE_SHIFT);
	KUNIT_EXPECT_PTR_EQ(test, hmm_pfn_to_page(e), page);
	KUNIT_EXPECT_EQ(test, hmm_pfn_to_phys(e), PFN_PHYS(page_to_pfn(page)));
	KUNIT_EXPECT_EQ(test, hmm_pfn_to_map_order(e),
			(unsigned int)(PMD_SHIFT - PAGE_SHIFT));
	__free_page(page);
}

static void request_merges_default_flags_and_mask(struct kunit *test)
{
	struct hmm_range r = { };
	const unsigned long F = HMM_PFN_REQ_FAULT, W = HMM_PFN_REQ_WRITE;

	/* nothing asked */
	KUNIT_EXPECT_EQ(test, hmm_request(&r, F | W), 0UL);

	/* default flags apply to every page, whatever the entry holds */
	r.default_flags = F;
	KUNIT_EXPECT_EQ(test, hmm_request(&r, 0), F);
	KUNIT_EXPECT_EQ(test, hmm_request(&r, W), F);

	/* the mask lets each entry add its own request */
	r.pfn_flags_mask = W;
	KUNIT_EXPECT_EQ(test, hmm_request(&r, W), F | W);
	KUNIT_EXPECT_EQ(test, hmm_request(&r, 0), F);

	/* per-page requests only */
	r.default_flags = 0;
	r.pfn_flags_mask = F | W;
	KUNIT_EXPECT_EQ(test, hmm_request(&r, 0), 0UL);
	KUNIT_EXPECT_EQ(test, hmm_request(&r, F), F);
	KUNIT_EXPECT_EQ(test, hmm_request(&r, F | W), F | W);
	/* write without fault asks for nothing */
	KUNIT_EXPECT_EQ(test, hmm_request(&r, W), 0UL);
	/* the old pfn and order bits of a recycled result are ignored */
	KUNIT_EXPECT_EQ(test, hmm_request(&r, F | 0x4242UL |
					  hmm_order_bits(9)), F);

	/* a mask without request bits lets nothing through */
	r.pfn_flags_mask = HMM_PFN_ERROR | 0xfffUL;
	KUNIT_EXPECT_EQ(test, hmm_request(&r, F | W | 0xfffUL), 0UL);
}

static void fault_only_when_cpu_state_falls_short(struct kunit *test)
{
	static const struct {
		unsigned long req, cpu;
		bool fault;
	} cases[] = {
		{ 0, 0, false },
		{ 0, HMM_PFN_ERROR, false },
		{ HMM_PFN_REQ_FAULT, 0, true },
		{ HMM_PFN_REQ_FAULT, HMM_PFN_VALID, false },
		{ HMM_PFN_REQ_FAULT, HMM_PFN_VALID | HMM_PFN_WRITE, false },
		{ HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0, true },
		{ HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, HMM_PFN_VALID, true },
		{ HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
		  HMM_PFN_VALID | HMM_PFN_WRITE, false },
		/* an unsatisfiable state is not satisfied */
		{ HMM_PFN_REQ_FAULT, HMM_PFN_ERROR, true },
	};
	int i;

	for (i = 0; i < ARRAY_SIZE(cases); i++)
		KUNIT_EXPECT_EQ_MSG(test, hmm_needs_fault(cases[i].req,
							  cases[i].cpu),
				    cases[i].fault, "case %d", i);
}

static void pte_state_describes_each_entry_kind(struct kunit *test)
{
	struct page *page = alloc_page(GFP_KERNEL);
	unsigned long pfn, zero = my_zero_pfn(0);
	struct hmm_range r = { };
	pte_t pte;

	KUNIT_ASSERT_NOT_NULL(test, page);
	pfn = page_to_pfn(page);

	KUNIT_EXPECT_EQ(test, hmm_pte_state(&r, __pte(0)), 0UL);
	KUNIT_EXPECT_EQ(test, hmm_pte_state(&r, pfn_pte(pfn, PAGE_SHARED)),
			pfn | HMM_PFN_VALID | HMM_PFN_WRITE);
	KUNIT_EXPECT_EQ(test, hmm_pte_state(&r, pfn_pte(pfn, PAGE_READONLY)),
			pfn | HMM_PFN_VALID);
	/* the zero page is special but readable */
	pte = pte_mkspecial(pfn_pte(zero, PAGE_READONLY));
	KUNIT_EXPECT_EQ(test, hmm_pte_state(&r, pte), zero | HMM_PFN_VALID);
	/* any other special pfn has no page to mirror */
	pte = pte_mkspecial(pfn_pte(pfn, PAGE_SHARED));
	KUNIT_EXPECT_EQ(test, hmm_pte_state(&r, pte),
			(unsigned long)HMM_PFN_ERROR);
	/* swapped out: a fault brings it back */
	pte = swp_entry_to_pte(swp_entry(0, 42));
	KUNIT_EXPECT_EQ(test, hmm_pte_state(&r, pte), 0UL);
	if (IS_ENABLED(CONFIG_MIGRATION)) {
		pte = swp_entry_to_pte(make_readable_migration_entry(pfn));
		KUNIT_EXPECT_EQ(test, hmm_pte_state(&r, pte), 0UL);
	}
	if (IS_ENABLED(CONFIG_MEMORY_FAILURE)) {
		pte = swp_entry_to_pte(make_hwpoison_entry(page));
		KUNIT_EXPECT_EQ(test, hmm_pte_state(&r, pte),
				(unsigned long)HMM_PFN_ERROR);
	}
	__free_page(page);
}

static void hk_walker(struct hmm_walker *w, struct hmm_range *r,
		      unsigned long *pfns, const unsigned long *in)
{
	memcpy(pfns, in, HK_NPAGES * sizeof(*pfns));
	r->start = HK_START;
	r->end = HK_START + HK_NPAGES * PAGE_SIZE;
	r->hmm_pfns = pfns;
	w->range = r;
	w->may_fault = (r->default_flags | r->pfn_flags_mask) &
		       HMM_PFN_REQ_FAULT;
	w->fault_start = 0;
	w->fault_end = 0;
}

#define HK_PAGE(i)	(HK_START + (i) * PAGE_SIZE)

static void report_cuts_out_first_run_to_fault(struct kunit *test)
{
	const unsigned long F = HMM_PFN_REQ_FAULT, W = HMM_PFN_REQ_WRITE;
	const unsigned long in[HK_NPAGES] = { 0, 0, F, F, 0, F | W, 0, 0 };
	const unsigned long ro = HMM_PFN_VALID | hmm_order_bits(3);
	struct hmm_range r = { .pfn_flags_mask = F | W };
	unsigned long pfns[HK_NPAGES];
	struct hmm_walker w;
	int i;

	/* nothing mapped: the first run of requests is cut out */
	hk_walker(&w, &r, pfns, in);
	KUNIT_EXPECT_EQ(test, hmm_report(&w, HK_PAGE(0), HK_PAGE(8), 0, 0),
			HMM_WALK_FAULT);
	KUNIT_EXPECT_EQ(test, w.fault_start, HK_PAGE(2));
	KUNIT_EXPECT_EQ(test, w.fault_end, HK_PAGE(4));
	KUNIT_EXPECT_EQ(test, pfns[0], 0UL);
	KUNIT_EXPECT_EQ(test, pfns[1], 0UL);
	/* the pages of the run keep their requests for the fault */
	KUNIT_EXPECT_EQ(test, pfns[2], F);

	/* mapped read-only: reads are satisfied, the write is not */
	hk_walker(&w, &r, pfns, in);
	KUNIT_EXPECT_EQ(test, hmm_report(&w, HK_PAGE(0), HK_PAGE(8), ro, 100),
			HMM_WALK_FAULT);
	for (i = 0; i < 5; i++)
		KUNIT_EXPECT_EQ(test, pfns[i], ro | (100UL + i));
	KUNIT_EXPECT_EQ(test, w.fault_start, HK_PAGE(5));
	KUNIT_EXPECT_EQ(test, w.fault_end, HK_PAGE(6));
	KUNIT_EXPECT_EQ(test, pfns[5], F | W);

	/* mapped writable: everything is satisfied */
	hk_walker(&w, &r, pfns, in);
	KUNIT_EXPECT_EQ(test, hmm_report(&w, HK_PAGE(0), HK_PAGE(8),
					 ro | HMM_PFN_WRITE, 200), 0);
	for (i = 0; i < HK_NPAGES; i++)
		KUNIT_EXPECT_EQ(test, pfns[i], ro | HMM_PFN_WRITE | (200UL + i));

	/* a run stops at the end of the piece being reported */
	hk_walker(&w, &r, pfns, in);
	KUNIT_EXPECT_EQ(test, hmm_report(&w, HK_PAGE(3), HK_PAGE(4), 0, 0),
			HMM_WALK_FAULT);
	KUNIT_EXPECT_EQ(test, w.fault_start, HK_PAGE(3));
	KUNIT_EXPECT_EQ(test, w.fault_end, HK_PAGE(4));
}

static void report_without_requests_faults_nothing(struct kunit *test)
{
	const unsigned long F = HMM_PFN_REQ_FAULT;
	const unsigned long in[HK_NPAGES] = { F, F, F, F, F, F, F, F };
	struct hmm_range r = { };	/* the mask hides every request */
	unsigned long pfns[HK_NPAGES];
	struct hmm_walker w;
	int i;

	hk_walker(&w, &r, pfns, in);
	KUNIT_EXPECT_FALSE(test, w.may_fault);
	KUNIT_EXPECT_EQ(test, hmm_report(&w, HK_PAGE(0), HK_PAGE(8), 0, 0), 0);
	for (i = 0; i < HK_NPAGES; i++)
		KUNIT_EXPECT_EQ(test, pfns[i], 0UL);
}

static void unmirrorable_piece_fails_only_when_asked(struct kunit *test)
{
	const unsigned long F = HMM_PFN_REQ_FAULT;
	const unsigned long in[HK_NPAGES] = { 0, 0, 0, F, 0, 0, 0, 0 };
	struct hmm_range r = { .pfn_flags_mask = F };
	unsigned long pfns[HK_NPAGES];
	struct hmm_walker w;
	int i;

	/* no page of the piece asks: each reads as an error */
	hk_walker(&w, &r, pfns, in);
	KUNIT_EXPECT_EQ(test, hmm_report_error(&w, HK_PAGE(4), HK_PAGE(8)), 0);
	for (i = 4; i < HK_NPAGES; i++)
		KUNIT_EXPECT_EQ(test, pfns[i], (unsigned long)HMM_PFN_ERROR);

	/* one page asks for a fault: the call fails */
	hk_walker(&w, &r, pfns, in);
	KUNIT_EXPECT_EQ(test, hmm_report_error(&w, HK_PAGE(0), HK_PAGE(8)),
			-EFAULT);
}

static void refuses_malformed_range(struct kunit *test)
{
	unsigned long pfns[HK_NPAGES];
	struct hmm_range r = { .hmm_pfns = pfns };

	/* refused before the notifier (NULL here) is looked at */
	r.start = HK_START;
	r.end = HK_START;
	KUNIT_EXPECT_EQ(test, hmm_range_fault(&r), -EINVAL);
	r.end = HK_START - PAGE_SIZE;
	KUNIT_EXPECT_EQ(test, hmm_range_fault(&r), -EINVAL);
	r.end = HK_START + PAGE_SIZE + 1;
	KUNIT_EXPECT_EQ(test, hmm_range_fault(&r), -EINVAL);
	r.start = HK_START + 8;
	r.end = HK_START + PAGE_SIZE;
	KUNIT_EXPECT_EQ(test, hmm_range_fault(&r), -EINVAL);
}

static void report_keeps_sticky_bits(struct kunit *test)
{
	const unsigned long F = HMM_PFN_REQ_FAULT;
	const unsigned long D = HMM_PFN_DMA_MAPPED, P = HMM_PFN_P2PDMA;
	const unsigned long in[HK_NPAGES] = { D, D | P, 0, HMM_PFN_P2PDMA_BUS,
					      D | F, 0, 0, D };
	struct hmm_range r = { .pfn_flags_mask = F };
	unsigned long pfns[HK_NPAGES];
	struct hmm_walker w;
	int i;

	/* a new result replaces the pfn and flags, not the sticky bits */
	hk_walker(&w, &r, pfns, in);
	KUNIT_EXPECT_EQ(test, hmm_report(&w, HK_PAGE(0), HK_PAGE(8),
					 HMM_PFN_VALID, 300), 0);
	for (i = 0; i < HK_NPAGES; i++)
		KUNIT_EXPECT_EQ(test, pfns[i],
				(in[i] & HMM_PFN_INOUT_FLAGS) | HMM_PFN_VALID |
				(300UL + i));

	/* and so does "not mapped", and an error */
	hk_walker(&w, &r, pfns, in);
	KUNIT_EXPECT_EQ(test, hmm_report(&w, HK_PAGE(0), HK_PAGE(4), 0, 0), 0);
	for (i = 0; i < 4; i++)
		KUNIT_EXPECT_EQ(test, pfns[i], in[i] & HMM_PFN_INOUT_FLAGS);
	KUNIT_EXPECT_EQ(test, hmm_report_error(&w, HK_PAGE(5), HK_PAGE(8)), 0);
	KUNIT_EXPECT_EQ(test, pfns[7], D | HMM_PFN_ERROR);
	/* a request still asks for a fault whatever the sticky bits say */
	hk_walker(&w, &r, pfns, in);
	KUNIT_EXPECT_EQ(test, hmm_report(&w, HK_PAGE(0), HK_PAGE(8), 0, 0),
			HMM_WALK_FAULT);
	KUNIT_EXPECT_EQ(test, w.fault_start, HK_PAGE(4));
}

#define HK_DMA_PAGES	4

/*
 * hmm_dma_map_*() against a real device using the direct mapping: each
 * valid entry maps to its physical address, a mapped entry maps again to
 * the same address, the state survives a new hmm_range_fault() result, and
 * unmapping clears it.  Bad sizes, and a device that needs DMA syncs, are
 * refused.
 */
static void dma_map_follows_the_mirror(struct kunit *test)
{
	struct page *pages[HK_DMA_PAGES] = { };
	struct hmm_dma_map map = { };
	struct device *dev;
	dma_addr_t addr;
	int i;

	dev = kunit_device_register(test, "hmm-dma-kunit");
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, dev);
	dev->dma_mask = &dev->coherent_dma_mask;
	KUNIT_ASSERT_EQ(test, dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64)),
			0);

	KUNIT_EXPECT_EQ(test, hmm_dma_map_alloc(dev, &map, 0, PAGE_SIZE),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, hmm_dma_map_alloc(dev, &map, 4, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, hmm_dma_map_alloc(dev, &map, 4, PAGE_SIZE / 2),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, hmm_dma_map_alloc(dev, &map, 4, 3 * PAGE_SIZE),
			-EINVAL);
#ifdef CONFIG_DMA_NEED_SYNC
	dev->dma_skip_sync = false;
	KUNIT_EXPECT_EQ(test, hmm_dma_map_alloc(dev, &map, 4, PAGE_SIZE),
			-EOPNOTSUPP);
	/* x86 DMA is cache-coherent: what a driver's probe would find */
	dev->dma_skip_sync = true;
#endif
	KUNIT_ASSERT_EQ(test, hmm_dma_map_alloc(dev, &map, HK_DMA_PAGES,
						PAGE_SIZE), 0);
	KUNIT_ASSERT_NOT_NULL(test, map.pfn_list);

	for (i = 0; i < HK_DMA_PAGES; i++) {
		pages[i] = alloc_page(GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, pages[i]);
		/* the last entry is not valid: hmm_range_fault() found nothing */
		if (i < HK_DMA_PAGES - 1)
			map.pfn_list[i] = page_to_pfn(pages[i]) | HMM_PFN_VALID;
	}
	for (i = 0; i < HK_DMA_PAGES - 1; i++) {
		addr = hmm_dma_map_pfn(dev, &map, i, NULL);
		KUNIT_EXPECT_EQ(test, addr,
				phys_to_dma(dev, page_to_phys(pages[i])));
		KUNIT_EXPECT_TRUE(test, map.pfn_list[i] & HMM_PFN_DMA_MAPPED);
		KUNIT_EXPECT_FALSE(test, map.pfn_list[i] & (HMM_PFN_P2PDMA |
							  HMM_PFN_P2PDMA_BUS));
	}
	KUNIT_EXPECT_EQ(test, hmm_dma_map_pfn(dev, &map, HK_DMA_PAGES - 1,
					      NULL), DMA_MAPPING_ERROR);
	KUNIT_EXPECT_EQ(test, map.pfn_list[HK_DMA_PAGES - 1], 0UL);

	/* mapping again gives the same address and changes nothing */
	KUNIT_EXPECT_EQ(test, hmm_dma_map_pfn(dev, &map, 1, NULL),
			phys_to_dma(dev, page_to_phys(pages[1])));

	/* a new hmm_range_fault() result keeps the DMA state */
	hmm_store(&map.pfn_list[2], page_to_pfn(pages[2]) | HMM_PFN_VALID |
		  HMM_PFN_WRITE);
	KUNIT_EXPECT_EQ(test, map.pfn_list[2], page_to_pfn(pages[2]) |
			HMM_PFN_VALID | HMM_PFN_WRITE | HMM_PFN_DMA_MAPPED);
	KUNIT_EXPECT_PTR_EQ(test, hmm_pfn_to_page(map.pfn_list[2]), pages[2]);
	KUNIT_EXPECT_EQ(test, hmm_pfn_to_phys(map.pfn_list[2]),
			page_to_phys(pages[2]));

	/* even when the page is gone from the mirror, unmap still unmaps */
	hmm_store(&map.pfn_list[0], 0);
	for (i = 0; i < HK_DMA_PAGES - 1; i++) {
		KUNIT_EXPECT_TRUE(test, hmm_dma_unmap_pfn(dev, &map, i));
		KUNIT_EXPECT_FALSE(test, map.pfn_list[i] & HMM_PFN_INOUT_FLAGS);
		KUNIT_EXPECT_FALSE(test, hmm_dma_unmap_pfn(dev, &map, i));
	}
	KUNIT_EXPECT_FALSE(test, hmm_dma_unmap_pfn(dev, &map,
						   HK_DMA_PAGES - 1));

	/* and a remap after the unmap maps afresh */
	map.pfn_list[1] = page_to_pfn(pages[1]) | HMM_PFN_VALID;
	KUNIT_EXPECT_EQ(test, hmm_dma_map_pfn(dev, &map, 1, NULL),
			phys_to_dma(dev, page_to_phys(pages[1])));
	KUNIT_EXPECT_TRUE(test, hmm_dma_unmap_pfn(dev, &map, 1));

	hmm_dma_map_free(dev, &map);
	KUNIT_EXPECT_NULL(test, map.pfn_list);
	KUNIT_EXPECT_NULL(test, map.dma_list);
	for (i = 0; i < HK_DMA_PAGES; i++)
		__free_page(pages[i]);
}

static struct kunit_case hmm_kunit_cases[] = {
	KUNIT_CASE(pfn_flag_bits_keep_their_places),
	KUNIT_CASE(map_order_reads_the_order_field),
	KUNIT_CASE(pfn_entry_gives_page_and_address),
	KUNIT_CASE(request_merges_default_flags_and_mask),
	KUNIT_CASE(fault_only_when_cpu_state_falls_short),
	KUNIT_CASE(pte_state_describes_each_entry_kind),
	KUNIT_CASE(report_cuts_out_first_run_to_fault),
	KUNIT_CASE(report_without_requests_faults_nothing),
	KUNIT_CASE(unmirrorable_piece_fails_only_when_asked),
	KUNIT_CASE(refuses_malformed_range),
	KUNIT_CASE(report_keeps_sticky_bits),
	KUNIT_CASE(dma_map_follows_the_mirror),
	{}
};

static struct kunit_suite hmm_kunit_suite = {
	.name = "hmm",
	.test_cases = hmm_kunit_cases,
};

kunit_test_suite(hmm_kunit_suite);

#endif /* _MM_TESTS_HMM_KUNIT_H */
