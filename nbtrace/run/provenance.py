"""run_metadata.json: enough to reproduce a diff later (argv, versions, git SHA, input checksums)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata

_DISTRIBUTIONS = ("nbtrace", "numpy", "click", "rich", "pyyaml")


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_sha(directory) -> str | None:
    """HEAD of the git work tree holding ``directory`` (with "-dirty" if modified), else None."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True,
                             text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for d in _DISTRIBUTIONS:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = None
    return out


def run_metadata(argv: list[str], inputs: dict[str, str]) -> dict:
    """argv: the command line; inputs: role -> path (e.g. {"a": ..., "b": ..., "spec": ...})."""
    here = os.path.dirname(os.path.abspath(__file__))
    return {
        "argv": list(argv),
        "cwd": os.getcwd(),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "git_sha": {"cwd": git_sha(os.getcwd()), "nbtrace": git_sha(here)},
        "inputs": {role: {"path": os.path.abspath(p), "sha256": sha256_file(p)}
                   for role, p in inputs.items() if p and os.path.isfile(p)},
    }
