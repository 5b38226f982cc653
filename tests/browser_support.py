"""Driving Debian's Chromium with Playwright, for the page tests.

Playwright's own browser downloads are never used: the tests launch /usr/bin/chromium (from
scripts/install-system-packages.sh). Without it the tests are skipped on a developer's
machine and fail on CI (`CI` set), where a silent skip would hide that nothing was tested.

Set LINKCERT_SCREENSHOTS=DIR to keep a screenshot of each page the tests reach (this is how
docs/screenshots/make.py refreshes the documentation's pictures).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 780}


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: run scripts/install-system-packages.sh (Debian's chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def new_page(
    browser: Browser, *, phone: bool = False, javascript: bool = True
) -> AsyncIterator[Page]:
    options: dict[str, Any] = {
        "viewport": PHONE if phone else DESKTOP,
        "java_script_enabled": javascript,
    }
    if phone:
        options.update(is_mobile=True, has_touch=True, device_scale_factor=2)
    context = await browser.new_context(**options)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        await context.close()


async def screenshot(page: Page, name: str) -> None:
    """Keep a full-page screenshot as DIR/name.png when LINKCERT_SCREENSHOTS=DIR is set."""
    directory = os.environ.get("LINKCERT_SCREENSHOTS")
    if not directory:
        return
    await asyncio.to_thread(Path(directory).mkdir, parents=True, exist_ok=True)
    # Relative times tick; the caret blinks: neither should differ between two runs' pictures.
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    await page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=True)


async def has_horizontal_scroll(page: Page) -> bool:
    result: bool = await page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    )
    return result


# Every visible element with text of its own, whose contrast with the background it sits on
# is under WCAG AA: 4.5:1, or 3:1 for large text (24px, or 18.66px bold).
LOW_CONTRAST_JS = """
() => {
  function rgba(text) {
    const m = text.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return [0, 0, 0, 0];
    const p = m[1].split(",").map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  }
  function luminance([r, g, b]) {
    const c = [r, g, b].map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  }
  function background(el) {
    for (let node = el; node; node = node.parentElement) {
      const bg = rgba(getComputedStyle(node).backgroundColor);
      if (bg[3] > 0.5) return bg;
    }
    return [255, 255, 255, 1];
  }
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.opacity === "0") continue;
    if (el.closest(".visually-hidden, [hidden]")) continue;
    const fg = rgba(style.color), bg = background(el);
    const a = luminance(fg), b = luminance(bg);
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) {
      low.push(el.tagName + " '" + el.textContent.trim().slice(0, 40) + "' " + ratio.toFixed(2));
    }
  }
  return low;
}
"""


async def low_contrast(page: Page) -> list[str]:
    found: list[str] = await page.evaluate(LOW_CONTRAST_JS)
    return found
