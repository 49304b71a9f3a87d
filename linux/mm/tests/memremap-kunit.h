/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KUnit cases for mm/memremap.c, included at the end of that file.
 *
 * Each case maps a small DEVICE_PRIVATE region taken from the free part
 * of the physical address space (request_free_mem_region()), so nothing
 * here touches real device memory: the pages of such a map have a memmap
 * only.
 */
#ifndef _MM_TESTS_MEMREMAP_KUNIT_H
#define _MM_TESTS_MEMREMAP_KUNIT_H

#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/slab.h>

/* Size of each test region: two hotplug sub-sections. */
#define MRK_REGION_SIZE		(2 * SUBSECTION_SIZE)

static atomic_t mrk_page_free_calls;
static struct page *mrk_last_freed;

static void mrk_page_free(struct page *page)
{
	WRITE_ONCE(mrk_last_freed, page);
	atomic_inc(&mrk_page_free_calls);
}

static vm_fault_t mrk_migrate_to_ram(struct vm_fault *vmf)
{
	return VM_FAULT_SIGBUS;
}

static const struct dev_pagemap_ops mrk_ops = {
	.page_free = mrk_page_free,
	.migrate_to_ram = mrk_migrate_to_ram,
};

static atomic_t mrk_folio_free_calls;
static struct folio *mrk_last_folio;
static unsigned int mrk_last_order;

static void mrk_folio_free(struct folio *folio)
{
	WRITE_ONCE(mrk_last_folio, folio);
	WRITE_ONCE(mrk_last_order, folio_order(folio));
	atomic_inc(&mrk_folio_free_calls);
}

static const struct dev_pagemap_ops mrk_folio_ops = {
	.folio_free = mrk_folio_free,
	.migrate_to_ram = mrk_migrate_to_ram,
};

static const struct dev_pagemap_ops mrk_ops_no_free = {
	.migrate_to_ram = mrk_migrate_to_ram,
};

static const struct dev_pagemap_ops mrk_ops_no_migrate = {
	.page_free = mrk_page_free,
};

/* Free physical regions, released by the test resource framework. */
static void mrk_release_region(void *data)
{
	struct resource *res = data;

	release_mem_region(res->start, resource_size(res));
}

static struct range mrk_region(struct kunit *test)
{
	struct resource *res;

	res = request_free_mem_region(&iomem_resource, MRK_REGION_SIZE,
				      "memremap-kunit");
	KUNIT_ASSERT_FALSE_MSG(test, IS_ERR(res), "no free region: %ld",
			       PTR_ERR(res));
	KUNIT_ASSERT_EQ(test, 0,
			kunit_add_action_or_reset(test, mrk_release_region,
						  res));
	return (struct range){ .start = res->start, .end = res->end };
}

/* A zeroed pgmap with room for @nr ranges, owned by @test. */
static struct dev_pagemap *mrk_pgmap(struct kunit *test, int nr,
				     enum memory_type type,
				     const struct dev_pagemap_ops *ops)
{
	struct dev_pagemap *pgmap;

	pgmap = kunit_kzalloc(test, struct_size(pgmap, ranges, nr),
			      GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, pgmap);
	pgmap->type = type;
	pgmap->ops = ops;
	pgmap->owner = test;
	pgmap->nr_range = nr;
	return pgmap;
}

static struct dev_pagemap *mrk_map_private(struct kunit *test)
{
	struct dev_pagemap *pgmap;
	void *ret;

	pgmap = mrk_pgmap(test, 1, MEMORY_DEVICE_PRIVATE, &mrk_ops);
	pgmap->range = mrk_region(test);
	ret = memremap_pages(pgmap, NUMA_NO_NODE);
	KUNIT_ASSERT_FALSE_MSG(test, IS_ERR(ret), "memremap_pages: %ld",
			       PTR_ERR(ret));
	return pgmap;
}

static unsigned long mrk_first_pfn(struct dev_pagemap *pgmap)
{
	return PHYS_PFN(pgmap->range.start);
}

static unsigned long mrk_last_pfn(struct dev_pagemap *pgmap)
{
	return PHYS_PFN(pgmap->range.end);
}

static int mrk_init(struct kunit *test)
{
	atomic_set(&mrk_page_free_calls, 0);
	WRITE_ONCE(mrk_last_freed, NULL);
	atomic_set(&mrk_folio_free_calls, 0);
	WRITE_ONCE(mrk_last_folio, NULL);
	return 0;
}

static void memremap_private_pages_live_in_zone_device(struct kunit *test)
{
	struct dev_pagemap *pgmap = mrk_map_private(test);
	unsigned long pfns[] = {
		mrk_first_pfn(pgmap),
		mrk_first_pfn(pgmap) + PAGES_PER_SUBSECTION,
		mrk_last_pfn(pgmap),
	};
	int i;

	for (i = 0; i < ARRAY_SIZE(pfns); i++) {
		struct page *page = pfn_to_page(pfns[i]);

		KUNIT_EXPECT_TRUE(test, is_zone_device_page(page));
		KUNIT_EXPECT_EQ(test, page_zonenum(page), ZONE_DEVICE);
		KUNIT_EXPECT_PTR_EQ(test, page->pgmap, pgmap);
		KUNIT_EXPECT_TRUE(test, is_device_private_page(page));
		KUNIT_EXPECT_FALSE(test, is_device_coherent_page(page));
		KUNIT_EXPECT_TRUE(test,
				  folio_is_device_private(page_folio(page)));
		/* free device pages wait in the driver's pool at zero */
		KUNIT_EXPECT_EQ(test, page_ref_count(page), 0);
		KUNIT_EXPECT_TRUE(test, pgmap_pfn_valid(pgmap, pfns[i]));
	}
	KUNIT_EXPECT_FALSE(test,
			   pgmap_pfn_valid(pgmap, mrk_first_pfn(pgmap) - 1));
	KUNIT_EXPECT_FALSE(test,
			   pgmap_pfn_valid(pgmap, mrk_last_pfn(pgmap) + 1));

	memunmap_pages(pgmap);
}

static void get_dev_pagemap_finds_only_live_maps(struct kunit *test)
{
	struct dev_pagemap *pgmap = mrk_map_private(test);
	unsigned long first = mrk_first_pfn(pgmap);
	unsigned long last = mrk_last_pfn(pgmap);
	struct dev_pagemap *found;

	found = get_dev_pagemap(first, NULL);
	KUNIT_EXPECT_PTR_EQ(test, found, pgmap);
	/* a held map covering the pfn is handed back as is */
	found = get_dev_pagemap(last, found);
	KUNIT_EXPECT_PTR_EQ(test, found, pgmap);
	put_dev_pagemap(found);

	KUNIT_EXPECT_NULL(test, get_dev_pagemap(first - 1, NULL));
	KUNIT_EXPECT_NULL(test, get_dev_pagemap(last + 1, NULL));

	memunmap_pages(pgmap);
	KUNIT_EXPECT_NULL(test, get_dev_pagemap(first, NULL));
	KUNIT_EXPECT_NULL(test, get_dev_pagemap(last, NULL));
}

static void final_put_calls_page_free_once(struct kunit *test)
{
	struct dev_pagemap *pgmap = mrk_map_private(test);
	struct page *page = pfn_to_page(mrk_first_pfn(pgmap) + 3);

	zone_device_page_init(page);
	KUNIT_EXPECT_EQ(test, page_ref_count(page), 1);
	KUNIT_EXPECT_TRUE(test, PageLocked(page));
	unlock_page(page);

	get_page(page);
	put_page(page);
	KUNIT_EXPECT_EQ(test, atomic_read(&mrk_page_free_calls), 0);

	/* stale anonymous state must be gone when the driver gets it back */
	page->mapping = (void *)PAGE_MAPPING_ANON;
	__set_bit(PG_anon_exclusive, &page->flags);
	put_page(page);
	KUNIT_EXPECT_EQ(test, atomic_read(&mrk_page_free_calls), 1);
	KUNIT_EXPECT_PTR_EQ(test, READ_ONCE(mrk_last_freed), page);
	KUNIT_EXPECT_EQ(test, page_ref_count(page), 0);
	KUNIT_EXPECT_NULL(test, page->mapping);
	KUNIT_EXPECT_FALSE(test, test_bit(PG_anon_exclusive, &page->flags));

	/* a freed page can be handed out again */
	zone_device_page_init(page);
	unlock_page(page);
	put_page(page);
	KUNIT_EXPECT_EQ(test, atomic_read(&mrk_page_free_calls), 2);

	memunmap_pages(pgmap);
	KUNIT_EXPECT_EQ(test, atomic_read(&mrk_page_free_calls), 2);
}

/* The first pfn of @pgmap's range aligned to 2^@order, and room for it. */
static unsigned long mrk_aligned_pfn(struct kunit *test,
				     struct dev_pagemap *pgmap,
				     unsigned int order)
{
	unsigned long pfn = ALIGN(mrk_first_pfn(pgmap), 1UL << order);

	KUNIT_ASSERT_LE(test, pfn + (1UL << order) - 1, mrk_last_pfn(pgmap));
	return pfn;
}

static void large_folio_init_and_free_whole(struct kunit *test)
{
	struct dev_pagemap *pgmap;
	unsigned int order = PMD_SHIFT - PAGE_SHIFT;
	struct folio *folio;
	unsigned long pfn;
	void *ret;

	pgmap = mrk_pgmap(test, 1, MEMORY_DEVICE_PRIVATE, &mrk_folio_ops);
	pgmap->range = mrk_region(test);
	ret = memremap_pages(pgmap, NUMA_NO_NODE);
	KUNIT_ASSERT_FALSE(test, IS_ERR(ret));
	pfn = mrk_aligned_pfn(test, pgmap, order);
	folio = page_folio(pfn_to_page(pfn));

	zone_device_folio_init(folio, pgmap, order);
	KUNIT_EXPECT_EQ(test, folio_order(folio), order);
	KUNIT_EXPECT_EQ(test, folio_ref_count(folio), 1);
	KUNIT_EXPECT_TRUE(test, folio_test_locked(folio));
	/* every page knows its folio and, through it, its map */
	KUNIT_EXPECT_PTR_EQ(test, page_folio(pfn_to_page(pfn + 7)), folio);
	KUNIT_EXPECT_PTR_EQ(test, page_pgmap(pfn_to_page(pfn + 511)), pgmap);
	KUNIT_EXPECT_TRUE(test, is_device_private_page(pfn_to_page(pfn + 300)));
	KUNIT_EXPECT_NULL(test, folio_zone_device_data(folio));
	folio_set_zone_device_data(folio, test);
	KUNIT_EXPECT_PTR_EQ(test, folio_zone_device_data(folio), (void *)test);
	folio_unlock(folio);

	/* one map reference for the folio: the map waits for it */
	KUNIT_EXPECT_FALSE(test, percpu_ref_is_zero(&pgmap->ref));
	folio_put(folio);
	KUNIT_EXPECT_EQ(test, atomic_read(&mrk_folio_free_calls), 1);
	KUNIT_EXPECT_PTR_EQ(test, READ_ONCE(mrk_last_folio), folio);
	KUNIT_EXPECT_EQ(test, READ_ONCE(mrk_last_order), order);
	KUNIT_EXPECT_EQ(test, folio_ref_count(folio), 0);

	/* its pages can be handed out again as small pages */
	zone_device_page_init(pfn_to_page(pfn + 5));
	folio = page_folio(pfn_to_page(pfn + 5));
	KUNIT_EXPECT_EQ(test, folio_order(folio), 0);
	KUNIT_EXPECT_PTR_EQ(test, &folio->page, pfn_to_page(pfn + 5));
	KUNIT_EXPECT_PTR_EQ(test, page_pgmap(&folio->page), pgmap);
	KUNIT_EXPECT_TRUE(test, is_device_private_page(&folio->page));
	folio_unlock(folio);
	folio_put(folio);
	KUNIT_EXPECT_EQ(test, atomic_read(&mrk_folio_free_calls), 2);
	KUNIT_EXPECT_EQ(test, READ_ONCE(mrk_last_order), 0);

	/* and the head as a small page, and the block as a folio again */
	zone_device_page_init(pfn_to_page(pfn));
	KUNIT_EXPECT_EQ(test, folio_order(page_folio(pfn_to_page(pfn))), 0);
	KUNIT_EXPECT_FALSE(test, PageHead(pfn_to_page(pfn)));
	folio = page_folio(pfn_to_page(pfn));
	folio_unlock(folio);
	folio_put(folio);
	zone_device_folio_init(folio, pgmap, 2);
	KUNIT_EXPECT_EQ(test, folio_order(folio), 2);
	folio_unlock(folio);
	folio_put(folio);
	KUNIT_EXPECT_EQ(test, READ_ONCE(mrk_last_order), 2);

	memunmap_pages(pgmap);
	KUNIT_EXPECT_EQ(test, atomic_read(&mrk_folio_free_calls), 4);
}

struct mrk_unmapper {
	struct dev_pagemap *pgmap;
	struct completion done;
};

static int mrk_unmap_thread(void *data)
{
	struct mrk_unmapper *u = data;

	memunmap_pages(u->pgmap);
	complete(&u->done);
	return 0;
}

static void unmap_waits_for_page_in_use(struct kunit *test)
{
	struct dev_pagemap *pgmap = mrk_map_private(test);
	struct page *page = pfn_to_page(mrk_first_pfn(pgmap));
	struct mrk_unmapper *u;
	struct task_struct *t;
	int i;

	/* static-lifetime on timeout: the thread may still use it */
	u = kzalloc(sizeof(*u), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, u);
	u->pgmap = pgmap;
	init_completion(&u->done);

	zone_device_page_init(page);
	unlock_page(page);

	t = kthread_run(mrk_unmap_thread, u, "memremap-kunit");
	if (IS_ERR(t)) {
		put_page(page);
		memunmap_pages(pgmap);
		kfree(u);
		KUNIT_FAIL(test, "kthread_run: %ld", PTR_ERR(t));
		return;
	}

	for (i = 0; i < 100 && !percpu_ref_is_dying(&pgmap->ref); i++)
		msleep(20);
	KUNIT_EXPECT_TRUE(test, percpu_ref_is_dying(&pgmap->ref));
	/* a dying map is not found any more ... */
	KUNIT_EXPECT_NULL(test, get_dev_pagemap(mrk_first_pfn(pgmap), NULL));
	/* ... but it is not torn down while its page is held */
	msleep(200);
	KUNIT_EXPECT_FALSE(test, completion_done(&u->done));
	KUNIT_EXPECT_EQ(test, atomic_read(&mrk_page_free_calls), 0);

	put_page(page);
	if (!wait_for_completion_timeout(&u->done, 30 * HZ)) {
		KUNIT_FAIL(test, "memunmap_pages() did not finish");
		return;	/* leak @u and the region rather than corrupt */
	}
	KUNIT_EXPECT_EQ(test, atomic_read(&mrk_page_free_calls), 1);
	kfree(u);
}

static void multi_range_map_covers_every_range(struct kunit *test)
{
	struct dev_pagemap *pgmap;
	struct dev_pagemap *found;
	void *ret;

	pgmap = mrk_pgmap(test, 2, MEMORY_DEVICE_PRIVATE, &mrk_ops);
	pgmap->ranges[0] = mrk_region(test);
	pgmap->ranges[1] = mrk_region(test);
	ret = memremap_pages(pgmap, NUMA_NO_NODE);
	KUNIT_ASSERT_FALSE(test, IS_ERR(ret));

	found = get_dev_pagemap(PHYS_PFN(pgmap->ranges[1].end), NULL);
	KUNIT_EXPECT_PTR_EQ(test, found, pgmap);
	/* the cached map also covers the other range */
	found = get_dev_pagemap(PHYS_PFN(pgmap->ranges[0].start), found);
	KUNIT_EXPECT_PTR_EQ(test, found, pgmap);
	put_dev_pagemap(found);
	KUNIT_EXPECT_PTR_EQ(test,
			    pfn_to_page(PHYS_PFN(pgmap->ranges[1].start))->pgmap,
			    pgmap);

	memunmap_pages(pgmap);
	KUNIT_EXPECT_NULL(test,
			  get_dev_pagemap(PHYS_PFN(pgmap->ranges[1].end), NULL));
}

/*
 * Expect memremap_pages(@pgmap) to fail with @err, leaving nothing
 * behind: no pfn of @pgmap is known to get_dev_pagemap(), and a valid
 * private map of each of its ranges can be created and removed again.
 */
static void mrk_expect_refused(struct kunit *test, struct dev_pagemap *pgmap,
			       int err)
{
	int nr = max(pgmap->nr_range, 1);
	struct dev_pagemap *probe;
	void *ret;
	int i;

	ret = memremap_pages(pgmap, NUMA_NO_NODE);
	KUNIT_ASSERT_TRUE(test, IS_ERR(ret));
	KUNIT_EXPECT_EQ(test, PTR_ERR(ret), (long)err);

	for (i = 0; i < nr; i++) {
		struct range r = pgmap->ranges[i];

		probe = get_dev_pagemap(PHYS_PFN(r.start), NULL);
		KUNIT_EXPECT_TRUE(test, !probe || probe != pgmap);
		put_dev_pagemap(probe);
		if (probe || r.end < r.start || !IS_ALIGNED(r.start |
		    (r.end + 1), SUBSECTION_SIZE))
			continue;
		if (region_intersects(r.start, range_len(&r),
				      IORESOURCE_SYSTEM_RAM,
				      IORES_DESC_NONE) != REGION_DISJOINT)
			continue;

		probe = mrk_pgmap(test, 1, MEMORY_DEVICE_PRIVATE, &mrk_ops);
		probe->range = r;
		ret = memremap_pages(probe, NUMA_NO_NODE);
		KUNIT_EXPECT_FALSE_MSG(test, IS_ERR(ret),
				       "range %d not reusable: %ld", i,
				       PTR_ERR(ret));
		if (!IS_ERR(ret))
			memunmap_pages(probe);
	}
}

enum mrk_flaw { MRK_AS_IS, MRK_NO_RANGES, MRK_NO_OWNER, MRK_MISALIGNED,
		MRK_EMPTY };

/*
 * One malformed one-range map: a fresh region with @type and @ops, and
 * then @flaw.  memremap_pages() must refuse each with -EINVAL.
 */
struct mrk_bad_map {
	const char *name;
	enum memory_type type;
	const struct dev_pagemap_ops *ops;
	enum mrk_flaw flaw;
};

static const struct mrk_bad_map mrk_bad_maps[] = {
	{ "no ranges", MEMORY_DEVICE_PRIVATE, &mrk_ops, MRK_NO_RANGES },
	{ "private without migrate_to_ram", MEMORY_DEVICE_PRIVATE,
	  &mrk_ops_no_migrate },
	{ "private without page_free", MEMORY_DEVICE_PRIVATE,
	  &mrk_ops_no_free },
	{ "private without ops", MEMORY_DEVICE_PRIVATE, NULL },
	{ "private without owner", MEMORY_DEVICE_PRIVATE, &mrk_ops,
	  MRK_NO_OWNER },
	{ "coherent without page_free", MEMORY_DEVICE_COHERENT, NULL },
	{ "coherent without owner", MEMORY_DEVICE_COHERENT, &mrk_ops,
	  MRK_NO_OWNER },
	{ "unknown type", (enum memory_type)0, &mrk_ops },
	{ "misaligned range", MEMORY_DEVICE_PRIVATE, &mrk_ops,
	  MRK_MISALIGNED },
	{ "empty range", MEMORY_DEVICE_PRIVATE, &mrk_ops, MRK_EMPTY },
};

static void mrk_bad_desc(const struct mrk_bad_map *m, char *desc)
{
	strscpy(desc, m->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(mrk_bad, mrk_bad_maps, mrk_bad_desc);

static void refuses_malformed_map(struct kunit *test)
{
	const struct mrk_bad_map *m = test->param_value;
	struct dev_pagemap *pgmap;

	pgmap = mrk_pgmap(test, 1, m->type, m->ops);
	pgmap->range = mrk_region(test);
	switch (m->flaw) {
	case MRK_NO_RANGES:
		pgmap->nr_range = 0;
		break;
	case MRK_NO_OWNER:
		pgmap->owner = NULL;
		break;
	case MRK_MISALIGNED:
		pgmap->range.start += PAGE_SIZE;
		break;
	case MRK_EMPTY:
		pgmap->range.end = pgmap->range.start - 1;
		break;
	case MRK_AS_IS:
		break;
	}
	mrk_expect_refused(test, pgmap, -EINVAL);
}

static void refuses_altmap_with_several_ranges(struct kunit *test)
{
	struct dev_pagemap *pgmap;

	pgmap = mrk_pgmap(test, 2, MEMORY_DEVICE_GENERIC, NULL);
	pgmap->ranges[0] = mrk_region(test);
	pgmap->ranges[1] = mrk_region(test);
	pgmap->flags |= PGMAP_ALTMAP_VALID;
	pgmap->altmap.base_pfn = PHYS_PFN(pgmap->ranges[0].start);
	mrk_expect_refused(test, pgmap, -EINVAL);
}

static void refuses_system_ram(struct kunit *test)
{
	struct dev_pagemap *pgmap;
	void *buf;
	phys_addr_t phys;

	buf = kunit_kmalloc(test, PAGE_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, buf);
	phys = ALIGN_DOWN(virt_to_phys(buf), SUBSECTION_SIZE);

	pgmap = mrk_pgmap(test, 1, MEMORY_DEVICE_PRIVATE, &mrk_ops);
	pgmap->range = (struct range){
		.start = phys,
		.end = phys + SUBSECTION_SIZE - 1,
	};
	mrk_expect_refused(test, pgmap, -ENXIO);
	KUNIT_EXPECT_FALSE(test, is_zone_device_page(virt_to_page(buf)));
}

static void refuses_overlap_with_existing_map(struct kunit *test)
{
	struct dev_pagemap *first = mrk_map_private(test);
	struct dev_pagemap *pgmap, *found;
	void *ret;

	pgmap = mrk_pgmap(test, 1, MEMORY_DEVICE_PRIVATE, &mrk_ops);
	pgmap->range = (struct range){
		.start = first->range.start + SUBSECTION_SIZE,
		.end = first->range.end,
	};
	ret = memremap_pages(pgmap, NUMA_NO_NODE);
	KUNIT_EXPECT_EQ(test, PTR_ERR_OR_ZERO(ret), -EBUSY);

	/* the existing map is untouched */
	found = get_dev_pagemap(PHYS_PFN(pgmap->range.start), NULL);
	KUNIT_EXPECT_PTR_EQ(test, found, first);
	put_dev_pagemap(found);
	KUNIT_EXPECT_PTR_EQ(test,
			    pfn_to_page(PHYS_PFN(pgmap->range.start))->pgmap,
			    first);
	memunmap_pages(first);
}

static void refused_second_range_undoes_the_first(struct kunit *test)
{
	struct dev_pagemap *pgmap;

	/* range 1 overlaps range 0, so it fails after range 0 is added */
	pgmap = mrk_pgmap(test, 2, MEMORY_DEVICE_PRIVATE, &mrk_ops);
	pgmap->ranges[0] = mrk_region(test);
	pgmap->ranges[1] = pgmap->ranges[0];
	mrk_expect_refused(test, pgmap, -EBUSY);
}

static struct kunit_case memremap_test_cases[] = {
	KUNIT_CASE(memremap_private_pages_live_in_zone_device),
	KUNIT_CASE(get_dev_pagemap_finds_only_live_maps),
	KUNIT_CASE(final_put_calls_page_free_once),
	KUNIT_CASE(large_folio_init_and_free_whole),
	KUNIT_CASE(unmap_waits_for_page_in_use),
	KUNIT_CASE(multi_range_map_covers_every_range),
	KUNIT_CASE_PARAM(refuses_malformed_map, mrk_bad_gen_params),
	KUNIT_CASE(refuses_altmap_with_several_ranges),
	KUNIT_CASE(refuses_system_ram),
	KUNIT_CASE(refuses_overlap_with_existing_map),
	KUNIT_CASE(refused_second_range_undoes_the_first),
	{}
};

static struct kunit_suite memremap_test_suite = {
	.name = "memremap",
	.init = mrk_init,
	.test_cases = memremap_test_cases,
};

kunit_test_suite(memremap_test_suite);

#endif /* _MM_TESTS_MEMREMAP_KUNIT_H */
