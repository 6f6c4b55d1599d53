"""Re-run every example and record what nbtrace said in its README (the fenced block after
"**What it said**"), so the READMEs never show stale output. Usage: python examples/refresh_readmes.py [NAME ...]"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BLOCK = re.compile(r"(\*\*What it said\*\*[^\n]*\n\n```\n)(.*?)(\n```)", re.S)


def refresh(folder: Path) -> str:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="100", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    run = subprocess.run(["bash", str(folder / "run.sh")], capture_output=True, text=True, env=env, timeout=900)
    said = (run.stdout or run.stderr).rstrip() + f"\n\n(exit code {run.returncode})"
    readme = folder / "README.md"
    text = readme.read_text()
    new, n = BLOCK.subn(lambda m: m.group(1) + said + m.group(3), text, count=1)
    if n != 1:
        return f"{folder.name}: no '**What it said**' block; README left as it was"
    readme.write_text(new)
    return f"{folder.name}: exit {run.returncode}"


def main(names: list[str]) -> None:
    folders = [HERE / n for n in names] if names else sorted(p.parent for p in HERE.glob("*/run.sh"))
    for folder in folders:
        print(refresh(folder), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
