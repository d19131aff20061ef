"""models stage of taxvlm."""
