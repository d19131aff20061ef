"""data stage of taxvlm."""
