"""specs: chips, links, clusters and models: pure data from catalog files with sources."""
