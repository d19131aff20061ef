"""Write (or `--check`) what is generated from the settings tree: the JSON schema Snakemake validates
with, and the key reference in config/README.md (`make config-docs`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from taxvlm.io import write_text
from taxvlm.settings.reference import key_reference, replace_block
from taxvlm.settings.schema import config_schema

HEADER = "# Generated from src/taxvlm/settings by `make config-docs`; do not edit (a test fails when it is stale).\n"


def schema_text() -> str:
    """workflow/schemas/config.schema.yaml as it should read."""
    return HEADER + yaml.safe_dump(config_schema(), sort_keys=False, width=120, allow_unicode=True)


def readme_text(current: str) -> str:
    """config/README.md with its key reference regenerated."""
    return replace_block(current, key_reference())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schema", type=Path, required=True, help="workflow/schemas/config.schema.yaml")
    parser.add_argument("--readme", type=Path, required=True, help="config/README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if either file is stale, writing nothing")
    args = parser.parse_args(argv)
    wanted = {args.schema: schema_text(), args.readme: readme_text(args.readme.read_text(encoding="utf-8"))}
    stale = [path for path, text in wanted.items() if path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path} is stale: run `make config-docs`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        write_text(wanted[path], path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
