"""taxvlm: how frozen language models generalise taxonomic knowledge to images."""
