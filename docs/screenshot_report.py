"""Render the HTML report of a hunt in a real headless browser and save a screenshot.

    python docs/screenshot_report.py [--inject mosflm-half-pixel] [--out docs/hunt-report.png]

Runs ``nbtrace hunt --inject NAME --out DIR`` (the built-in default configuration), opens
DIR/report.html in headless Chromium (or Google Chrome) and writes a full-page PNG. Exit 0 on
success, 2 when no browser is installed (Debian: ``apt-get install -y chromium``) or a step fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HERE = Path(__file__).resolve().parent


def browser() -> str | None:
    return next((b for b in (shutil.which(n) for n in BROWSERS) if b), None)


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 9000) -> None:
    """Whole-page PNG of ``html``: a window taller than the page, then the blank below it is cut."""
    exe = browser()
    if exe is None:
        raise SystemExit("no headless browser found (tried: " + ", ".join(BROWSERS) + "); "
                         "install one, e.g. apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="nbtrace-shot-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--window-size={width},{height}", f"--screenshot={png}", html.resolve().as_uri()]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if run.returncode != 0 or not png.is_file() or png.stat().st_size == 0:
        raise SystemExit(f"{exe} failed (exit {run.returncode}): {run.stderr.strip()[-400:]}")
    _trim(png)


def _trim(png: Path) -> None:
    """Cut the white rows below the page's content (Pillow comes with matplotlib)."""
    import numpy as np
    from PIL import Image

    img = Image.open(png).convert("RGB")
    rows = np.flatnonzero((np.asarray(img) < 250).any(axis=(1, 2)))
    if rows.size:
        img = img.crop((0, 0, img.width, min(img.height, int(rows[-1]) + 40)))
    # 256 adaptive colours keep the figures readable at a third of the bytes (it is committed)
    img.quantize(256, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inject", default="mosflm-half-pixel")
    ap.add_argument("--out", type=Path, default=HERE / "hunt-report.png")
    ap.add_argument("--keep", type=Path, default=None, help="keep the hunt's --out directory here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nbtrace-report-") as tmp:
        out = args.keep or Path(tmp) / "hunt"
        nbtrace = [sys.executable, "-m", "nbtrace"]
        hunt = subprocess.run([*nbtrace, "hunt", "--inject", args.inject, "--out", str(out)],
                              capture_output=True, text=True, env=dict(os.environ, NO_COLOR="1"), timeout=900)
        if hunt.returncode not in (0, 1):
            print(hunt.stderr, file=sys.stderr)
            return 2
        try:
            screenshot(out / "report.html", args.out)
        except SystemExit as exc:
            print(exc, file=sys.stderr)
            return 2
    print(f"{args.out}: screenshot of the report of `nbtrace hunt --inject {args.inject} --out DIR`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
