"""The configuration as one typed tree: every key's type, default and meaning written once.

Each section is a module of its own, so a job imports only the sections it reads (its code
fingerprint, `taxvlm.sources`, then changes only with them); `taxvlm.settings.tree.Config` joins
them. The JSON schema Snakemake validates with and the key reference in `config/README.md` are
generated from the tree (`taxvlm.settings.generate`, `make config-docs`); a test fails when either is
stale. This file imports nothing, so that importing one section does not import the others.
"""
