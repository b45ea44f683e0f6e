"""costs: what work costs on a chip: kernel times, one layer's kernels, FLOPs and memory."""
