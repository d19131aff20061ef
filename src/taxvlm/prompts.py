"""Prompt texts shared by the data tables and the models; a module of its own so that editing model
code never reruns data rules and editing data code never reruns training (rules track imports)."""

CAPTION_PROMPT = "A picture of"  # LiMBeR's text prompt: after the image tokens, before a caption
