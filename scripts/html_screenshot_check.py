#!/usr/bin/env python3
"""Renders a `tarjama translate --format html` page in headless Chromium and checks it.

Checks, on the DOM Chromium built (--dump-dom):
  - every Arabic cell is <td dir="rtl" lang="ar">, every English cell <td dir="ltr" lang="en">,
    and there are as many of one as of the other (two columns on every row);
  - no markup from the text leaked in (the cells hold only text and sentence spans).
and on a screenshot (PIL): in the Arabic column the lines hug the right edge (ragged left),
in the English column the left edge (ragged right), i.e. Arabic is laid out right-to-left.

Usage:
  scripts/html_screenshot_check.py PAGE.html [--png OUT.png]
  scripts/html_screenshot_check.py --input ARTICLE.txt --model gemma-3-270m [--tarjama BIN] [--png OUT.png]
Needs: Debian's `chromium` package; `pip install -r scripts/requirements-screenshot.txt`.
Not part of CI (no Chromium there). Exit status 0 when every check passes.
"""

import argparse
import html.parser
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Cells(html.parser.HTMLParser):
    """Collects the table cells' attributes and any element nested in a cell."""

    def __init__(self):
        super().__init__()
        self.cells = []
        self.in_cell = False
        self.nested = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "td":
            self.cells.append(attrs)
            self.in_cell = True
        elif self.in_cell and tag != "span":
            self.nested.append(tag)

    def handle_endtag(self, tag):
        if tag == "td":
            self.in_cell = False


def chromium(args, profile):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        sys.exit("error: chromium not found (apt-get install -y chromium)")
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def check_dom(dom):
    parser = Cells()
    parser.feed(dom)
    ar = [c for c in parser.cells if c.get("dir") == "rtl" and c.get("lang") == "ar"]
    en = [c for c in parser.cells if c.get("dir") == "ltr" and c.get("lang") == "en"]
    problems = []
    if not ar:
        problems.append("no <td dir=rtl lang=ar> cell")
    if len(ar) != len(en):
        problems.append(f"{len(ar)} Arabic cells but {len(en)} English cells")
    if len(ar) + len(en) != len(parser.cells):
        problems.append("cells without dir/lang")
    if parser.nested:
        problems.append(f"markup inside cells: {sorted(set(parser.nested))}")
    return len(ar), problems


def check_png(png):
    from PIL import Image

    img = Image.open(png).convert("L")
    w, h = img.size
    px = img.load()
    # The page is centred with a max width; find the table's horizontal extent from the
    # dark pixels, then split it in two columns.
    dark = lambda x, y: px[x, y] < 110  # noqa: E731
    cols = [x for x in range(w) if any(dark(x, y) for y in range(0, h, 2))]
    if not cols:
        return ["the screenshot is blank"]
    left, right = min(cols), max(cols)
    mid = (left + right) // 2
    rows = {"ar": [], "en": []}
    for y in range(h):
        for name, (a, b) in {"ar": (left, mid - 4), "en": (mid + 4, right)}.items():
            xs = [x for x in range(a, b) if dark(x, y)]
            if xs:
                rows[name].append((min(xs) - a, b - max(xs)))
    problems = []
    for name, want in (("ar", "right"), ("en", "left")):
        if len(rows[name]) < 10:
            problems.append(f"{name} column: almost no text rendered")
            continue
        lgap = sorted(r[0] for r in rows[name])[len(rows[name]) // 2]
        rgap = sorted(r[1] for r in rows[name])[len(rows[name]) // 2]
        hugs = "right" if rgap < lgap else "left"
        print(f"{name} column: median gap left {lgap}px, right {rgap}px -> aligned {hugs}")
        if hugs != want:
            problems.append(f"{name} column is aligned {hugs}, expected {want}")
    return problems


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("page", nargs="?", type=Path)
    p.add_argument("--input", type=Path, help="translate this text file first")
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--tarjama", default="target/release/tarjama")
    p.add_argument("--png", type=Path, default=Path("html-check.png"))
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tarjama-html-"))
    page = a.page
    if page is None:
        if a.input is None:
            p.error("give PAGE.html or --input TEXT")
        page = work / "page.html"
        subprocess.run(
            [a.tarjama, "translate", str(a.input), "-o", str(page), "--format", "html",
             "--model", a.model, "--quiet"],
            check=True,
        )
    uri = page.resolve().as_uri()
    dom = chromium(["--dump-dom", uri], work / "p1").stdout
    count, problems = check_dom(dom)
    print(f"DOM: {count} rows with an Arabic (rtl) and an English (ltr) cell")
    chromium([f"--screenshot={a.png.resolve()}", "--window-size=1200,800", uri], work / "p2")
    if not a.png.is_file():
        problems.append("no screenshot written")
    else:
        print(f"screenshot: {a.png}")
        problems += check_png(a.png)
    for problem in problems:
        print(f"FAIL: {problem}")
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
