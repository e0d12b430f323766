"""Open the rendered page in a headless Chromium and save a screenshot of it.

    python -m leaderboard.screenshot leaderboard/results/zoo/index.html \
        leaderboard/results/zoo/index.png
    python -m leaderboard.screenshot leaderboard/results/zoo/index.html \
        leaderboard/results/zoo/index-phone.png --width 390 --height 844 --at "section h2"

Uses Playwright's Python client (``pip install playwright``, in the ``test`` extra) with the
system's Chromium (Debian's ``chromium`` package, ``/usr/bin/chromium``, or the one
``ART_FIM_CHROMIUM`` names): Playwright never downloads a browser here. The browser starts
without a sandbox (containers and CI runners rarely allow one) and without background
networking, so opening the page makes no request beyond the file itself.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Where Debian's ``chromium`` package puts the browser.
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-background-networking")


def chromium_path() -> Path | None:
    """The Chromium executable, or ``None`` if it is not there.

    ``ART_FIM_CHROMIUM`` names it; else Debian's is used.
    """
    path = Path(os.environ.get("ART_FIM_CHROMIUM", DEFAULT_CHROMIUM))
    return path if path.is_file() else None


@contextmanager
def browser_page(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A Playwright page in a headless system Chromium, closed on exit.

    Raises:
        FileNotFoundError: no Chromium at :func:`chromium_path`.
        ImportError: Playwright is not installed.
    """
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise FileNotFoundError(
            f"no Chromium at {os.environ.get('ART_FIM_CHROMIUM', DEFAULT_CHROMIUM)}: `apt-get "
            "install -y chromium`, or name one with ART_FIM_CHROMIUM"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable),
                                             args=list(CHROMIUM_ARGS))
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def screenshot(page_path: Path, png_path: Path, width: int = 1400, height: int = 900,
               at: str | None = None) -> None:
    """Save what a ``width × height`` window shows of the page as a PNG.

    Args:
        page_path: the page.
        png_path: where the PNG goes.
        width: the window's width in CSS pixels (390: a phone).
        height: its height.
        at: a CSS selector; the window first scrolls so that its first match is at the top
            (``None``: the top of the page).
    """
    with browser_page(width, height) as page:
        page.goto(page_path.resolve().as_uri())
        if at:
            page.locator(at).first.evaluate("el => el.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(png_path))


def main(argv: list[str] | None = None) -> int:
    """``python -m leaderboard.screenshot PAGE PNG [--width W] [--height H]``."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", type=Path, help="the rendered index.html")
    parser.add_argument("png", type=Path, help="where the screenshot goes")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--at", default=None,
                        help="CSS selector to scroll to the top first (default: the page's top)")
    args = parser.parse_args(argv)
    screenshot(args.page, args.png, args.width, args.height, args.at)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
