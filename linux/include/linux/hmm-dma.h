/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * DMA-mapping the pages hmm_range_fault() found, one entry at a time.
 *
 * A driver that mirrors a range into a device which reaches memory by DMA
 * (an RDMA NIC doing on-demand paging, say) keeps, per range, the
 * hmm_range_fault() array and the DMA address of each entry.  The DMA
 * state of an entry lives in the array itself, in the sticky bits
 * %HMM_PFN_DMA_MAPPED, %HMM_PFN_P2PDMA and %HMM_PFN_P2PDMA_BUS, which
 * hmm_range_fault() carries over from one call to the next.
 *
 * The interface is the one Linux 6.16 added.  This kernel's DMA API has no
 * IOVA ranges to link pages into, so each entry is mapped on its own with
 * dma_map_page() (or as a PCI bus address for a peer-to-peer page behind
 * the same switch) and its address kept in @dma_list.
 */
#ifndef LINUX_HMM_DMA_H
#define LINUX_HMM_DMA_H

#include <linux/dma-map-ops.h>
#include <linux/types.h>

struct device;

/**
 * struct hmm_dma_map - a range's pfns and the DMA addresses of its entries
 * @pfn_list: the hmm_range_fault() array (hmm_range.hmm_pfns) of the range
 * @dma_list: the DMA address of each mapped entry
 * @dma_entry_size: bytes mapped per entry, a power of two of at least
 *	PAGE_SIZE (PAGE_SIZE unless the device maps larger pages)
 *
 * Linux 6.16's structure also holds a &struct dma_iova_state; this
 * kernel's has none (see the porting notes in Documentation/mm/hmm.rst).
 */
struct hmm_dma_map {
	unsigned long *pfn_list;
	dma_addr_t *dma_list;
	size_t dma_entry_size;
};

int hmm_dma_map_alloc(struct device *dev, struct hmm_dma_map *map,
		      size_t nr_entries, size_t dma_entry_size);
void hmm_dma_map_free(struct device *dev, struct hmm_dma_map *map);
dma_addr_t hmm_dma_map_pfn(struct device *dev, struct hmm_dma_map *map,
			   size_t idx,
			   struct pci_p2pdma_map_state *p2pdma_state);
bool hmm_dma_unmap_pfn(struct device *dev, struct hmm_dma_map *map,
		       size_t idx);

#endif /* LINUX_HMM_DMA_H */
