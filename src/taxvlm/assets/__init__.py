"""assets stage of taxvlm."""
