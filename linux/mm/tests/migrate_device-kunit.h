/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KUnit cases for mm/migrate_device.c, included at the end of that file.
 *
 * They check that migrate_vma_setup() refuses malformed requests with
 * -EINVAL before it looks at any page table.  The VMA is a bare structure
 * that belongs to no mm: every request here must be turned down by the
 * argument checks alone, and the src array must come back untouched.
 *
 * A table then checks which destinations migrate_vma_pages() accepts for
 * which source: a destination must be a folio of the source's order, named
 * by its first page, with MIGRATE_PFN_COMPOUND exactly when that order is
 * not zero.
 */
#ifndef _MM_TESTS_MIGRATE_DEVICE_KUNIT_H
#define _MM_TESTS_MIGRATE_DEVICE_KUNIT_H

#include <kunit/test.h>

#define MDK_START	0x40000000UL
#define MDK_NPAGES	8
#define MDK_END		(MDK_START + MDK_NPAGES * PAGE_SIZE)
/* A value migrate_vma_setup() would never leave in a src entry. */
#define MDK_POISON	0x5a5a5a5aUL

struct mdk_ctx {
	struct vm_area_struct vma;
	unsigned long src[MDK_NPAGES];
	unsigned long dst[MDK_NPAGES];
	struct migrate_vma args;
};

static struct mdk_ctx *mdk_ctx(struct kunit *test)
{
	struct mdk_ctx *ctx = kunit_kzalloc(test, sizeof(*ctx), GFP_KERNEL);
	int i;

	KUNIT_ASSERT_NOT_NULL(test, ctx);
	ctx->vma.vm_start = MDK_START;
	ctx->vma.vm_end = MDK_END;
	vm_flags_init(&ctx->vma, VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE);
	for (i = 0; i < MDK_NPAGES; i++)
		ctx->src[i] = MDK_POISON;

	ctx->args.vma = &ctx->vma;
	ctx->args.start = MDK_START;
	ctx->args.end = MDK_END;
	ctx->args.src = ctx->src;
	ctx->args.dst = ctx->dst;
	ctx->args.flags = MIGRATE_VMA_SELECT_SYSTEM;
	return ctx;
}

/* The request is refused, and nothing was written to src. */
static void mdk_expect_einval(struct kunit *test, struct mdk_ctx *ctx)
{
	int i;

	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&ctx->args), -EINVAL);
	for (i = 0; i < MDK_NPAGES; i++)
		KUNIT_EXPECT_EQ(test, ctx->src[i], MDK_POISON);
}

/* The baseline request the other cases break passes the checks. */
static void well_formed_request_passes_checks(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	KUNIT_EXPECT_EQ(test, mvma_check_args(&ctx->args), 0);
	ctx->args.start = MDK_START + PAGE_SIZE;
	ctx->args.end = MDK_START + 2 * PAGE_SIZE;
	KUNIT_EXPECT_EQ(test, mvma_check_args(&ctx->args), 0);
}

static void refuses_missing_vma(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	ctx->args.vma = NULL;
	mdk_expect_einval(test, ctx);
}

static void refuses_missing_src(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	ctx->args.src = NULL;
	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&ctx->args), -EINVAL);
}

static void refuses_missing_dst(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	ctx->args.dst = NULL;
	mdk_expect_einval(test, ctx);
}

static void refuses_unaligned_start(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	ctx->args.start = MDK_START + 1;
	mdk_expect_einval(test, ctx);
}

static void refuses_unaligned_end(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	ctx->args.end = MDK_END - PAGE_SIZE / 2;
	mdk_expect_einval(test, ctx);
}

static void refuses_empty_range(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	ctx->args.end = ctx->args.start;
	mdk_expect_einval(test, ctx);
}

static void refuses_reversed_range(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	ctx->args.start = MDK_START + 2 * PAGE_SIZE;
	ctx->args.end = MDK_START + PAGE_SIZE;
	mdk_expect_einval(test, ctx);
}

static void refuses_start_below_vma(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	ctx->args.start = MDK_START - PAGE_SIZE;
	ctx->args.end = MDK_START + PAGE_SIZE;
	mdk_expect_einval(test, ctx);
}

static void refuses_end_beyond_vma(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	ctx->args.start = MDK_END - PAGE_SIZE;
	ctx->args.end = MDK_END + PAGE_SIZE;
	mdk_expect_einval(test, ctx);
}

static void refuses_range_outside_vma(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	ctx->args.start = MDK_END;
	ctx->args.end = MDK_END + PAGE_SIZE;
	mdk_expect_einval(test, ctx);
}

static void refuses_pfnmap_vma(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	vm_flags_init(&ctx->vma, ctx->vma.vm_flags | VM_PFNMAP);
	mdk_expect_einval(test, ctx);
}

static void refuses_io_vma(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	vm_flags_init(&ctx->vma, ctx->vma.vm_flags | VM_IO);
	mdk_expect_einval(test, ctx);
}

#ifdef CONFIG_HUGETLB_PAGE
static void refuses_hugetlb_vma(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);

	vm_flags_init(&ctx->vma, ctx->vma.vm_flags | VM_HUGETLB);
	mdk_expect_einval(test, ctx);
}
#endif

/* fault_page must be the device-private page of a migrate_to_ram() call. */
static void refuses_system_fault_page(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);
	struct page *page = alloc_page(GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, page);
	ctx->args.fault_page = page;
	mdk_expect_einval(test, ctx);
	__free_page(page);
}

/* One source and destination pair for mdev_dst_fits(), and its answer. */
struct mdk_fit_case {
	const char *name;
	int src_order;		/* -1: an empty slot, no page */
	bool src_compound;
	int dst_order;
	bool dst_tail;		/* dst names the folio's second page */
	bool dst_compound;
	bool fits;
};

static const struct mdk_fit_case mdk_fit_cases[] = {
	{ "small page for a small page", 0, false, 0, false, false, true },
	{ "huge folio for a small page", 0, false, MDEV_PMD_ORDER, false,
	  true, false },
	{ "huge folio for a huge folio", MDEV_PMD_ORDER, true, MDEV_PMD_ORDER,
	  false, true, true },
	{ "huge folio without the compound flag", MDEV_PMD_ORDER, true,
	  MDEV_PMD_ORDER, false, false, false },
	{ "smaller folio for a huge folio", MDEV_PMD_ORDER, true, 4, false,
	  true, false },
	{ "tail page of a huge folio", MDEV_PMD_ORDER, true, MDEV_PMD_ORDER,
	  true, true, false },
	{ "small page for a huge folio", MDEV_PMD_ORDER, true, 0, false, false,
	  false },
	{ "huge folio for an empty huge slot", -1, true, MDEV_PMD_ORDER, false,
	  true, true },
	{ "small folio for an empty huge slot", -1, true, 4, false, true,
	  false },
	{ "small page for an empty slot", -1, false, 0, false, false, true },
	{ "folio of the same small order", 4, true, 4, false, true, true },
};

static void mdk_fit_desc(const struct mdk_fit_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(mdk_fit, mdk_fit_cases, mdk_fit_desc);

static struct page *mdk_folio_page(struct kunit *test, int order)
{
	struct folio *folio = folio_alloc(GFP_KERNEL, order);

	KUNIT_ASSERT_NOT_NULL(test, folio);
	return &folio->page;
}

static void destination_must_match_source_order(struct kunit *test)
{
	const struct mdk_fit_case *c = test->param_value;
	unsigned long src = MIGRATE_PFN_MIGRATE, dst;
	struct page *spage = NULL, *dpage;

	if (c->src_order >= 0) {
		spage = mdk_folio_page(test, c->src_order);
		src |= migrate_pfn(page_to_pfn(spage));
	}
	if (c->src_compound)
		src |= MIGRATE_PFN_COMPOUND;
	dpage = mdk_folio_page(test, c->dst_order);
	dst = migrate_pfn(page_to_pfn(dpage) + c->dst_tail);
	if (c->dst_compound)
		dst |= MIGRATE_PFN_COMPOUND;

	KUNIT_EXPECT_EQ(test, mdev_dst_fits(src, dst), c->fits);

	folio_put(page_folio(dpage));
	if (spage)
		folio_put(page_folio(spage));
}

static struct kunit_case migrate_device_test_cases[] = {
	KUNIT_CASE(well_formed_request_passes_checks),
	KUNIT_CASE(refuses_missing_vma),
	KUNIT_CASE(refuses_missing_src),
	KUNIT_CASE(refuses_missing_dst),
	KUNIT_CASE(refuses_unaligned_start),
	KUNIT_CASE(refuses_unaligned_end),
	KUNIT_CASE(refuses_empty_range),
	KUNIT_CASE(refuses_reversed_range),
	KUNIT_CASE(refuses_start_below_vma),
	KUNIT_CASE(refuses_end_beyond_vma),
	KUNIT_CASE(refuses_range_outside_vma),
	KUNIT_CASE(refuses_pfnmap_vma),
	KUNIT_CASE(refuses_io_vma),
#ifdef CONFIG_HUGETLB_PAGE
	KUNIT_CASE(refuses_hugetlb_vma),
#endif
	KUNIT_CASE(refuses_system_fault_page),
	KUNIT_CASE_PARAM(destination_must_match_source_order,
			 mdk_fit_gen_params),
	{}
};

static struct kunit_suite migrate_device_test_suite = {
	.name = "migrate_device",
	.test_cases = migrate_device_test_cases,
};

kunit_test_suite(migrate_device_test_suite);

#endif /* _MM_TESTS_MIGRATE_DEVICE_KUNIT_H */
