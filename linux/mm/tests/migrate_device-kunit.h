/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KUnit cases for mm/migrate_device.c, included at the end of that file.
 *
 * A table of malformed requests checks that migrate_vma_setup() refuses
 * each with -EINVAL before it looks at any page table.  The VMA is a bare
 * structure that belongs to no mm: every request here must be turned down
 * by the argument checks alone, and the src array must come back
 * untouched.
 *
 * A table then checks which destinations migrate_vma_pages() accepts for
 * which source: a destination must be a folio of the source's order, named
 * by its first page, with MIGRATE_PFN_COMPOUND exactly when that order is
 * not zero.
 *
 * The last cases run the three steps on real memory: a private anonymous
 * mapping in an mm of the test's own (kunit_vm_mmap()), each page written
 * with a word of its own.  Collection must lock and unmap each page and
 * describe it in src; finalize without destinations must map every page
 * back where it was; with destinations the new pages must be mapped in
 * their place; a page somebody else holds a reference on must be left
 * out and stay.  The data is read back through the user mapping, and the
 * page behind each address through get_user_pages_fast().
 */
#ifndef _MM_TESTS_MIGRATE_DEVICE_KUNIT_H
#define _MM_TESTS_MIGRATE_DEVICE_KUNIT_H

#include <kunit/test.h>
#include <linux/mman.h>

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

enum mdk_drop { MDK_KEEP, MDK_NO_VMA, MDK_NO_SRC, MDK_NO_DST };

/*
 * One malformed request: the baseline of mdk_ctx() with one thing broken.
 * A zero @start or @end keeps the baseline's.
 */
struct mdk_bad_case {
	const char *name;
	enum mdk_drop drop;	/* an argument left out */
	unsigned long start, end;
	unsigned long vm_flags;	/* added to the VMA's */
	bool fault_page;	/* a system page as fault_page */
};

static const struct mdk_bad_case mdk_bad_cases[] = {
	{ "no vma", .drop = MDK_NO_VMA },
	{ "no src array", .drop = MDK_NO_SRC },
	{ "no dst array", .drop = MDK_NO_DST },
	{ "unaligned start", .start = MDK_START + 1 },
	{ "unaligned end", .end = MDK_END - PAGE_SIZE / 2 },
	{ "empty range", .start = MDK_START, .end = MDK_START },
	{ "reversed range", .start = MDK_START + 2 * PAGE_SIZE,
	  .end = MDK_START + PAGE_SIZE },
	{ "start below the vma", .start = MDK_START - PAGE_SIZE,
	  .end = MDK_START + PAGE_SIZE },
	{ "end beyond the vma", .start = MDK_END - PAGE_SIZE,
	  .end = MDK_END + PAGE_SIZE },
	{ "range outside the vma", .start = MDK_END,
	  .end = MDK_END + PAGE_SIZE },
	{ "pfnmap vma", .vm_flags = VM_PFNMAP },
	{ "io vma", .vm_flags = VM_IO },
#ifdef CONFIG_HUGETLB_PAGE
	{ "hugetlb vma", .vm_flags = VM_HUGETLB },
#endif
	/* fault_page must be the device-private page of migrate_to_ram() */
	{ "system page as fault_page", .fault_page = true },
};

static void mdk_bad_desc(const struct mdk_bad_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(mdk_bad, mdk_bad_cases, mdk_bad_desc);

/*
 * Each malformed request is refused with -EINVAL, src untouched (when
 * there is one).
 */
static void refuses_malformed_request(struct kunit *test)
{
	const struct mdk_bad_case *c = test->param_value;
	struct mdk_ctx *ctx = mdk_ctx(test);
	struct page *page = NULL;

	if (c->start)
		ctx->args.start = c->start;
	if (c->end)
		ctx->args.end = c->end;
	if (c->vm_flags)
		vm_flags_init(&ctx->vma, ctx->vma.vm_flags | c->vm_flags);
	if (c->fault_page) {
		page = alloc_page(GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, page);
		ctx->args.fault_page = page;
	}
	switch (c->drop) {
	case MDK_NO_VMA:
		ctx->args.vma = NULL;
		break;
	case MDK_NO_SRC:
		ctx->args.src = NULL;
		break;
	case MDK_NO_DST:
		ctx->args.dst = NULL;
		break;
	case MDK_KEEP:
		break;
	}

	if (c->drop == MDK_NO_SRC)
		KUNIT_EXPECT_EQ(test, migrate_vma_setup(&ctx->args), -EINVAL);
	else
		mdk_expect_einval(test, ctx);
	if (page)
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

/* The word page @i of a user range holds. */
static u64 mdk_word(unsigned long i)
{
	return 0x6d64657600000000ULL | i;
}

/*
 * A private anonymous mapping of MDK_NPAGES pages in the test's own mm,
 * each page written (so present, writable and exclusive) with its word.
 */
static unsigned long mdk_user_range(struct kunit *test)
{
	unsigned long addr, i;

	addr = kunit_vm_mmap(test, NULL, 0, MDK_NPAGES * PAGE_SIZE,
			     PROT_READ | PROT_WRITE,
			     MAP_ANONYMOUS | MAP_PRIVATE, 0);
	KUNIT_ASSERT_TRUE(test, addr && !IS_ERR_VALUE(addr));
	for (i = 0; i < MDK_NPAGES; i++) {
		u64 w = mdk_word(i);

		KUNIT_ASSERT_EQ(test, copy_to_user((void __user *)addr +
						   i * PAGE_SIZE, &w,
						   sizeof(w)), 0);
	}
	return addr;
}

/* The pfn mapped at @addr of the test's mm, through GUP. */
static unsigned long mdk_user_pfn(struct kunit *test, unsigned long addr)
{
	struct page *page;
	unsigned long pfn;

	KUNIT_ASSERT_EQ(test, get_user_pages_fast(addr, 1, 0, &page), 1);
	pfn = page_to_pfn(page);
	put_page(page);
	return pfn;
}

/* Every page of the range still reads its own word. */
static void mdk_expect_words(struct kunit *test, unsigned long addr)
{
	unsigned long i;
	u64 w;

	for (i = 0; i < MDK_NPAGES; i++) {
		KUNIT_ASSERT_EQ(test, copy_from_user(&w, (void __user *)addr +
						     i * PAGE_SIZE,
						     sizeof(w)), 0);
		KUNIT_EXPECT_EQ(test, w, mdk_word(i));
	}
}

/* Collect [addr, +MDK_NPAGES) of system memory into @args; mmap lock held. */
static void mdk_setup_user(struct kunit *test, struct mdk_ctx *ctx,
			   unsigned long addr)
{
	struct vm_area_struct *vma = vma_lookup(current->mm, addr);

	KUNIT_ASSERT_NOT_NULL(test, vma);
	ctx->args.vma = vma;
	ctx->args.start = addr;
	ctx->args.end = addr + MDK_NPAGES * PAGE_SIZE;
	KUNIT_ASSERT_EQ(test, migrate_vma_setup(&ctx->args), 0);
}

/*
 * Give each collected entry a new system page holding a copy of its
 * data, as a driver moving memory between two places would; the other
 * entries get none.
 */
static void mdk_give_destinations(struct kunit *test, struct mdk_ctx *ctx)
{
	unsigned long i;

	for (i = 0; i < MDK_NPAGES; i++) {
		struct page *dpage;

		ctx->dst[i] = 0;
		if (!(ctx->src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		dpage = alloc_page(GFP_HIGHUSER_MOVABLE);
		KUNIT_ASSERT_NOT_NULL(test, dpage);
		lock_page(dpage);
		copy_highpage(dpage, migrate_pfn_to_page(ctx->src[i]));
		ctx->dst[i] = migrate_pfn(page_to_pfn(dpage));
	}
}

/*
 * Finalize the migration of @ctx, drop the mmap lock, and expect page @i
 * of the range at @addr to be @pfn[i] and to read its word.
 */
static void mdk_finalize_expect(struct kunit *test, struct mdk_ctx *ctx,
				unsigned long addr, const unsigned long *pfn)
{
	unsigned long i;

	migrate_vma_finalize(&ctx->args);
	mmap_read_unlock(current->mm);
	for (i = 0; i < MDK_NPAGES; i++)
		KUNIT_EXPECT_EQ(test, mdk_user_pfn(test, addr + i * PAGE_SIZE),
				pfn[i]);
	mdk_expect_words(test, addr);
}

/*
 * Collection locks and unmaps each page and describes it; finalize with
 * no destination maps each back at its place, with its data.
 */
static void collect_unmaps_finalize_restores(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);
	unsigned long addr = mdk_user_range(test);
	unsigned long pfn[MDK_NPAGES], i;

	for (i = 0; i < MDK_NPAGES; i++)
		pfn[i] = mdk_user_pfn(test, addr + i * PAGE_SIZE);

	mmap_read_lock(current->mm);
	mdk_setup_user(test, ctx, addr);
	KUNIT_EXPECT_EQ(test, ctx->args.cpages, MDK_NPAGES);
	for (i = 0; i < MDK_NPAGES; i++) {
		struct folio *folio = pfn_folio(pfn[i]);

		KUNIT_EXPECT_EQ(test, ctx->src[i],
				migrate_pfn(pfn[i]) | MIGRATE_PFN_MIGRATE |
				MIGRATE_PFN_WRITE);
		KUNIT_EXPECT_TRUE(test, folio_test_locked(folio));
		KUNIT_EXPECT_FALSE(test, folio_mapped(folio));
		ctx->dst[i] = 0;
	}
	migrate_vma_pages(&ctx->args);
	mdk_finalize_expect(test, ctx, addr, pfn);
}

/*
 * With a destination for each page the new pages are mapped in place of
 * the old ones, and the data the caller copied is what the user reads.
 */
static void pages_finalize_maps_destinations(struct kunit *test)
{
	struct mdk_ctx *ctx = mdk_ctx(test);
	unsigned long addr = mdk_user_range(test);
	unsigned long pfn[MDK_NPAGES], i;

	mmap_read_lock(current->mm);
	mdk_setup_user(test, ctx, addr);
	mdk_give_destinations(test, ctx);
	migrate_vma_pages(&ctx->args);
	for (i = 0; i < MDK_NPAGES; i++) {
		KUNIT_EXPECT_TRUE(test, ctx->src[i] & MIGRATE_PFN_MIGRATE);
		pfn[i] = page_to_pfn(migrate_pfn_to_page(ctx->dst[i]));
	}
	mdk_finalize_expect(test, ctx, addr, pfn);
}

/*
 * A page with a reference the walk cannot explain (a GUP reference here)
 * is left out of the migration, and stays mapped where it was, while
 * the others move.
 */
static void referenced_page_stays(struct kunit *test)
{
	const unsigned long held = 3;
	struct mdk_ctx *ctx = mdk_ctx(test);
	unsigned long addr = mdk_user_range(test);
	unsigned long pfn;
	struct page *page;

	KUNIT_ASSERT_EQ(test, get_user_pages_fast(addr + held * PAGE_SIZE, 1,
						  0, &page), 1);
	pfn = page_to_pfn(page);

	mmap_read_lock(current->mm);
	mdk_setup_user(test, ctx, addr);
	KUNIT_EXPECT_FALSE(test, ctx->src[held] & MIGRATE_PFN_MIGRATE);
	KUNIT_EXPECT_EQ(test, ctx->args.cpages, MDK_NPAGES - 1);
	mdk_give_destinations(test, ctx);
	migrate_vma_pages(&ctx->args);
	migrate_vma_finalize(&ctx->args);
	mmap_read_unlock(current->mm);

	KUNIT_EXPECT_EQ(test, mdk_user_pfn(test, addr + held * PAGE_SIZE),
			pfn);
	KUNIT_EXPECT_TRUE(test, page_mapped(page));
	put_page(page);
	mdk_expect_words(test, addr);
}

static struct kunit_case migrate_device_test_cases[] = {
	KUNIT_CASE(well_formed_request_passes_checks),
	KUNIT_CASE_PARAM(refuses_malformed_request, mdk_bad_gen_params),
	KUNIT_CASE_PARAM(destination_must_match_source_order,
			 mdk_fit_gen_params),
	KUNIT_CASE(collect_unmaps_finalize_restores),
	KUNIT_CASE(pages_finalize_maps_destinations),
	KUNIT_CASE(referenced_page_stays),
	{}
};

static struct kunit_suite migrate_device_test_suite = {
	.name = "migrate_device",
	.test_cases = migrate_device_test_cases,
};

kunit_test_suite(migrate_device_test_suite);

#endif /* _MM_TESTS_MIGRATE_DEVICE_KUNIT_H */
