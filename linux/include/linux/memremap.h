/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ZONE_DEVICE page maps: struct pages for memory that is not ordinary
 * system RAM (device memory, persistent memory, PCI BARs).
 *
 * See mm/memremap.c for the life cycle of a map and its pages, and
 * Documentation/mm/hmm-devmem.rst for an overview.
 */
#ifndef _LINUX_MEMREMAP_H_
#define _LINUX_MEMREMAP_H_

#include <linux/mmzone.h>
#include <linux/range.h>
#include <linux/ioport.h>
#include <linux/percpu-refcount.h>

struct resource;
struct device;
struct dev_pagemap;

/**
 * enum memory_type - what a ZONE_DEVICE page map describes
 * @MEMORY_DEVICE_PRIVATE: device memory the CPU cannot access at all.
 *	The pages exist so that a CPU page table can point at them through
 *	special swap entries; a CPU fault on such an entry calls
 *	dev_pagemap_ops.migrate_to_ram().  No kernel linear mapping exists.
 * @MEMORY_DEVICE_COHERENT: device memory the CPU can access coherently
 *	(e.g. over CXL).  Pages are mapped like ordinary pages but must stay
 *	migratable, so they may not be long-term pinned.
 * @MEMORY_DEVICE_FS_DAX: persistent memory used by a DAX filesystem.
 *	Page reference counts are one-based: a count of one means idle, and
 *	the filesystem is woken when a page becomes idle again.
 * @MEMORY_DEVICE_GENERIC: memory with RAM semantics handed out as a whole
 *	by a driver (device-dax, Xen unpopulated memory).
 * @MEMORY_DEVICE_PCI_P2PDMA: a PCI BAR used for peer-to-peer DMA, mapped
 *	uncached.
 *
 * Zero is not a valid type, so an uninitialised map is refused.
 */
enum memory_type {
	MEMORY_DEVICE_PRIVATE = 1,
	MEMORY_DEVICE_COHERENT,
	MEMORY_DEVICE_FS_DAX,
	MEMORY_DEVICE_GENERIC,
	MEMORY_DEVICE_PCI_P2PDMA,
};

/**
 * struct dev_pagemap_ops - driver callbacks of a page map
 * @page_free: a page's last reference is gone.  For DEVICE_PRIVATE and
 *	DEVICE_COHERENT maps the page is back in the driver's free pool with
 *	a reference count of zero; other types get the count reset to one
 *	after the call.  Only called for order-0 folios when @folio_free is
 *	also provided.
 * @migrate_to_ram: DEVICE_PRIVATE only (mandatory there): the CPU faulted
 *	on a page of this map; move the data to a CPU accessible page.
 *	vmf->page is the page the faulting entry points at, which may be
 *	any page of a large folio.
 * @memory_failure: a hardware error hit @nr_pages pages from @pfn; notify
 *	and recover.  Optional: when missing or returning -EOPNOTSUPP the
 *	generic handler of mm/memory-failure.c is used.
 * @folio_free: a folio of any order lost its last reference and is back
 *	in the driver's free pool, still of the order it was handed out with
 *	(its pages keep a count of zero).  A DEVICE_PRIVATE or
 *	DEVICE_COHERENT map provides this one, @page_free, or both; a map
 *	that hands out large folios (zone_device_folio_init() with an order
 *	above zero) must provide this one.
 * @folio_split: optional; one of the driver's large folios, @head, was
 *	split while in use and @tail is one of the new folios it was split
 *	into (called once for every new folio but the one at @head).  Driver
 *	state kept in folio_zone_device_data() of @head can be copied or
 *	divided here; @tail starts with none.
 */
struct dev_pagemap_ops {
	void (*page_free)(struct page *page);
	vm_fault_t (*migrate_to_ram)(struct vm_fault *vmf);
	int (*memory_failure)(struct dev_pagemap *pgmap, unsigned long pfn,
			      unsigned long nr_pages, int mf_flags);
	void (*folio_free)(struct folio *folio);
	void (*folio_split)(struct folio *head, struct folio *tail);
};

/* pgmap->altmap is filled in and the memmap is to live in device memory */
#define PGMAP_ALTMAP_VALID	BIT(0)

/**
 * struct vmem_altmap - device memory set aside to hold its own memmap
 * @base_pfn: first pfn of the device range the altmap belongs to
 * @end_pfn: pfn one past the last one usable for the memmap
 * @reserve: pages at @base_pfn kept for the driver (e.g. a label area)
 * @free: pages after @reserve that vmemmap_populate() may consume
 * @align: pages skipped to satisfy allocation alignment
 * @alloc: pages consumed so far; owned by the vmemmap code
 * @inaccessible: the pages are not CPU accessible, do not touch them
 *
 * When a map is created with %PGMAP_ALTMAP_VALID, the struct pages of
 * the range are allocated from the device range itself rather than from
 * system RAM.  vmem_altmap_offset() and vmem_altmap_free() in <linux/mm.h>
 * work on this structure.
 */
struct vmem_altmap {
	unsigned long base_pfn;
	const unsigned long end_pfn;
	const unsigned long reserve;
	unsigned long free;
	unsigned long align;
	unsigned long alloc;
	bool inaccessible;
};

/**
 * struct dev_pagemap - a ZONE_DEVICE page map
 * @altmap: memmap storage inside the device range, see %PGMAP_ALTMAP_VALID
 * @ref: keeps the map alive; held by every allocated page of a
 *	DEVICE_PRIVATE or DEVICE_COHERENT map and by get_dev_pagemap() users
 * @done: completed when @ref has been killed and has dropped to zero
 * @type: one of &enum memory_type
 * @flags: %PGMAP_* flags
 * @vmemmap_shift: order of the compound pages the memmap is built from
 *	(zero for order-0 pages)
 * @ops: driver callbacks, may be NULL for types that need none
 * @owner: cookie identifying the driver instance; mandatory for
 *	DEVICE_PRIVATE and DEVICE_COHERENT, used by HMM and migration to
 *	recognise the caller's own pages
 * @nr_range: number of entries in @ranges
 * @range: the physical range when @nr_range is 1
 * @ranges: the physical ranges (inclusive ends) when @nr_range > 1; the
 *	array is allocated by the caller after the structure
 */
struct dev_pagemap {
	struct vmem_altmap altmap;
	struct percpu_ref ref;
	struct completion done;
	enum memory_type type;
	unsigned int flags;
	unsigned long vmemmap_shift;
	const struct dev_pagemap_ops *ops;
	void *owner;
	int nr_range;
	union {
		struct range range;
		DECLARE_FLEX_ARRAY(struct range, ranges);
	};
};

/**
 * page_pgmap() - the page map a ZONE_DEVICE page belongs to
 * @page: a ZONE_DEVICE page, the head or any tail page of its folio
 *
 * Tail pages of a large folio keep their compound head where a single
 * page keeps its map pointer, so the map is read from the folio's head.
 * Linux 6.15 added this accessor when it moved the pointer to the folio;
 * drivers written for newer kernels use it instead of page->pgmap.
 *
 * Return: the page map.
 */
static inline struct dev_pagemap *page_pgmap(const struct page *page)
{
	VM_WARN_ON_ONCE_PAGE(!is_zone_device_page(page), page);
	return compound_head(page)->pgmap;
}

static inline bool is_device_private_page(const struct page *page)
{
	if (!IS_ENABLED(CONFIG_DEVICE_PRIVATE) || !is_zone_device_page(page))
		return false;
	return page_pgmap(page)->type == MEMORY_DEVICE_PRIVATE;
}

static inline bool folio_is_device_private(const struct folio *folio)
{
	return is_device_private_page(&folio->page);
}

static inline bool is_device_coherent_page(const struct page *page)
{
	if (!is_zone_device_page(page))
		return false;
	return page_pgmap(page)->type == MEMORY_DEVICE_COHERENT;
}

static inline bool folio_is_device_coherent(const struct folio *folio)
{
	return is_device_coherent_page(&folio->page);
}

static inline bool is_pci_p2pdma_page(const struct page *page)
{
	if (!IS_ENABLED(CONFIG_PCI_P2PDMA) || !is_zone_device_page(page))
		return false;
	return page_pgmap(page)->type == MEMORY_DEVICE_PCI_P2PDMA;
}

/**
 * folio_zone_device_data() - the driver's word of a device folio
 * @folio: a DEVICE_PRIVATE or DEVICE_COHERENT folio of any order
 *
 * A driver may keep one pointer of its own per folio (the page that
 * backs it on the device, say).  It lives in the head page; the tail
 * pages of a large folio have no room for one.
 *
 * Return: the value last set by folio_set_zone_device_data(), NULL for a
 * folio fresh from zone_device_folio_init().
 */
static inline void *folio_zone_device_data(const struct folio *folio)
{
	return folio->page.zone_device_data;
}

/**
 * folio_set_zone_device_data() - set the driver's word of a device folio
 * @folio: a DEVICE_PRIVATE or DEVICE_COHERENT folio of any order
 * @data: the value
 */
static inline void folio_set_zone_device_data(struct folio *folio, void *data)
{
	folio->page.zone_device_data = data;
}

static inline struct vmem_altmap *pgmap_altmap(struct dev_pagemap *pgmap)
{
	return (pgmap->flags & PGMAP_ALTMAP_VALID) ? &pgmap->altmap : NULL;
}

static inline unsigned long pgmap_vmemmap_nr(struct dev_pagemap *pgmap)
{
	return 1 << pgmap->vmemmap_shift;
}

static inline bool pgmap_has_memory_failure(struct dev_pagemap *pgmap)
{
	return pgmap->ops && pgmap->ops->memory_failure;
}

/* Drop a reference taken by get_dev_pagemap(); NULL is ignored. */
static inline void put_dev_pagemap(struct dev_pagemap *pgmap)
{
	if (pgmap)
		percpu_ref_put(&pgmap->ref);
}

#ifdef CONFIG_ZONE_DEVICE
void zone_device_page_init(struct page *page);
void zone_device_folio_init(struct folio *folio, struct dev_pagemap *pgmap,
			    unsigned int order);
void *memremap_pages(struct dev_pagemap *pgmap, int nid);
void memunmap_pages(struct dev_pagemap *pgmap);
void *devm_memremap_pages(struct device *dev, struct dev_pagemap *pgmap);
void devm_memunmap_pages(struct device *dev, struct dev_pagemap *pgmap);
struct dev_pagemap *get_dev_pagemap(unsigned long pfn,
				    struct dev_pagemap *pgmap);
bool pgmap_pfn_valid(struct dev_pagemap *pgmap, unsigned long pfn);

unsigned long memremap_compat_align(void);
#else
/*
 * Without ZONE_DEVICE no page map can be created: callers are expected to
 * fall back to devm_memremap(), so reaching this is a configuration bug.
 */
static inline void *devm_memremap_pages(struct device *dev,
					struct dev_pagemap *pgmap)
{
	WARN_ON_ONCE(1);
	return ERR_PTR(-ENXIO);
}

static inline void devm_memunmap_pages(struct device *dev,
				       struct dev_pagemap *pgmap)
{
}

static inline struct dev_pagemap *get_dev_pagemap(unsigned long pfn,
						  struct dev_pagemap *pgmap)
{
	return NULL;
}

static inline bool pgmap_pfn_valid(struct dev_pagemap *pgmap,
				   unsigned long pfn)
{
	return false;
}

/* memremap() alone maps single pages, so any page alignment will do */
static inline unsigned long memremap_compat_align(void)
{
	return PAGE_SIZE;
}
#endif /* CONFIG_ZONE_DEVICE */

#endif /* _LINUX_MEMREMAP_H_ */
