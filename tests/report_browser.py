"""Read Snakemake's HTML report as a person does, in a real headless Chromium driven by Playwright.

The report is a React app: nothing is rendered until a category is opened and a result's view and
description are clicked, so the checks here click through every category and every result and
collect what a reader would see go wrong: console errors, uncaught page errors, docutils "System
Message" blocks in rendered text, images that do not decode and tables without rows.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# As root, in a machine without network: no sandbox, no GPU, and no background connections that the
# closed network would refuse (each refusal is logged, and some start-ups stall on them).
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
CLICK_TIMEOUT_MS = 10_000


def chromium() -> str | None:
    """Debian's Chromium (`make test` installs it when it can), or None."""
    return next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)


@dataclass
class ReportCheck:
    """What reading the report showed: `seen` maps each result path to what was rendered for it."""

    errors: list[str] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)
    results: list[str] = field(default_factory=list)


def read_report(report: Path, executable: str) -> ReportCheck:
    """Open the report, visit its general pages, then every result of every (sub)category."""
    from playwright.sync_api import sync_playwright

    check = ReportCheck()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(CLICK_TIMEOUT_MS)
            page.on("console", lambda msg: msg.type == "error" and check.errors.append(f"console: {msg.text}"))
            page.on("pageerror", lambda exc: check.errors.append(f"page error: {exc}"))
            page.goto(report.resolve().as_uri())
            _visit_general_pages(page, check)
            categories: dict[str, dict[str, list[str]]] = page.evaluate("categories")
            check.results = sorted(page.evaluate("Object.keys(results)"))
            for category, subcategories in categories.items():
                for subcategory, paths in subcategories.items():
                    _read_subcategory(page, category, subcategory, paths, check)
        finally:
            browser.close()
    return check


def _visit_general_pages(page: Any, check: ReportCheck) -> None:
    """The description (home), the rule graph and the runtime statistics are rendered on their own."""
    for name in ("Workflow", "Statistics", "About"):
        _home(page)
        page.get_by_role("link", name=name, exact=True).first.click()
        page.wait_for_timeout(200)
        _system_messages(page, f"page {name}", check)


def _read_subcategory(page: Any, category: str, subcategory: str, paths: list[str], check: ReportCheck) -> None:
    for path in paths:  # a result's description replaces the list: reopen it for each result
        _open(page, category, subcategory)
        check.seen[path] = _read_result(page, path, check)


def _open(page: Any, category: str, subcategory: str) -> None:
    _home(page)
    page.get_by_role("link", name=category, exact=True).last.click()
    if len(page.evaluate("(c) => Object.keys(categories[c])", category)) > 1:
        page.get_by_role("link", name=subcategory, exact=True).last.click()


def _home(page: Any) -> None:
    """Back to the menu of categories: the breadcrumbs' first entry (the home icon) in every view."""
    page.locator("nav ol li a").first.click()


def _read_result(page: Any, path: str, check: ReportCheck) -> str:
    """Click the result's view button (an image is shown; anything else is a download link whose
    bytes are read) and its description button; return what was seen."""
    row = page.locator("tr").filter(has=page.get_by_text(path, exact=True))
    if row.count() != 1:
        check.errors.append(f"{path}: {row.count()} rows in its category's list")
        return "missing"
    view, info = row.locator("a").nth(0), row.locator("a").nth(1)
    mime = page.evaluate("(p) => results[p].mime_type", path)
    if mime.startswith("image/"):
        view.click()
        seen = _image(page, path, check)
    else:
        seen = _download(page, view.get_attribute("href"), mime, path, check)
    info.click()
    page.get_by_text("Description", exact=True).first.wait_for()
    _system_messages(page, f"{path} description", check)
    return seen


def _image(page: Any, path: str, check: ReportCheck) -> str:
    """The shown <img> is found by its data URI in the page (a selector on a megabyte attribute is slow)."""
    image = page.wait_for_function("(p) => [...document.images].find((i) => i.src === results[p].data_uri)", arg=path)
    decoded = "(img) => img.decode().then(() => [img.naturalWidth, img.naturalHeight], () => [0, 0])"
    width, height = image.evaluate(decoded)
    if not width or not height:
        check.errors.append(f"{path}: image does not decode")
    return f"image {width}x{height}"


def _download(page: Any, href: str | None, mime: str, path: str, check: ReportCheck) -> str:
    """The bytes behind the view link, fetched by the page itself (what the reader's download holds)."""
    if not href or not href.startswith("data:"):
        check.errors.append(f"{path}: view link is {href!r}, not the embedded file")
        return "no link"
    text = page.evaluate("(u) => fetch(u).then((r) => r.text())", href)
    if mime == "text/csv":
        rows = list(csv.reader(io.StringIO(text)))
        if len(rows) < 2 or not any(cell.strip() for row in rows[1:] for cell in row):
            check.errors.append(f"{path}: table has no data rows")
        return f"table {max(len(rows) - 1, 0)} rows"
    if not text.strip():
        check.errors.append(f"{path}: empty {mime}")
    return f"{mime} {len(text.splitlines())} lines"


def _system_messages(page: Any, where: str, check: ReportCheck) -> None:
    """docutils renders an RST problem as a visible 'System Message' block instead of failing."""
    for text in page.locator(".system-message").all_inner_texts():
        check.errors.append(f"{where}: {' '.join(text.split())[:200]}")
