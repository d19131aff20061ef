"""analysis stage of taxvlm."""
