"""run_metadata.json: enough to reproduce a diff later (argv, versions, nbtrace's commit and
source checksum, input checksums).

Nothing here runs a program. Asking ``git`` about a folder runs that folder's repository
configuration (``core.fsmonitor``, filters, hooks): a user working inside an unpacked bug report
or a colleague's checkout would execute whatever its author put there. So the commit is read
from the ``.git`` files directly, and only for nbtrace's own source checkout — never for the
current folder or a trace folder, whose history says nothing about the nbtrace that ran.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

_DISTRIBUTIONS = ("nbtrace", "numpy", "click", "rich", "pyyaml")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256 object names
_MAX_GIT_FILE = 1 << 24  # packed-refs of a large repository is a few MB; anything bigger is not ours to read


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def nbtrace_checkout() -> Path | None:
    """The source checkout nbtrace runs from (an editable install), else None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / ".git").exists() and (root / "nbtrace" / "__init__.py").is_file() else None


def git_sha(checkout) -> str | None:
    """HEAD commit of the git work tree whose top folder is ``checkout``, read from its ``.git``
    files (HEAD -> ref -> loose ref or packed-refs; a linked worktree's ``gitdir:`` and
    ``commondir`` are followed). None when any step is missing or malformed. Runs no program."""
    try:
        gitdir = _gitdir(Path(checkout))
        if gitdir is None:
            return None
        common = gitdir
        if (gitdir / "commondir").is_file():
            common = (gitdir / _read(gitdir / "commondir").strip()).resolve()
        head = _read(gitdir / "HEAD").strip()
        for _ in range(5):  # a symbolic ref may point at another symbolic ref; never loop for ever
            if _SHA.fullmatch(head):
                return head
            if not head.startswith("ref: "):
                return None
            head = _resolve_ref(head[5:].strip(), gitdir, common)
            if head is None:
                return None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return None


def _gitdir(checkout: Path) -> Path | None:
    dot = checkout / ".git"
    if dot.is_dir():
        return dot
    if dot.is_file():  # a linked worktree or submodule: "gitdir: PATH"
        text = _read(dot).strip()
        if text.startswith("gitdir: "):
            return (checkout / text[8:].strip()).resolve()
    return None


def _resolve_ref(ref: str, gitdir: Path, common: Path) -> str | None:
    if not ref.startswith("refs/") or ".." in ref.split("/"):
        return None
    for base in (gitdir, common):
        loose = base / ref
        if loose.is_file():
            return _read(loose).strip()
    packed = common / "packed-refs"
    if packed.is_file():
        for line in _read(packed).splitlines():
            words = line.split()
            if len(words) == 2 and words[1] == ref and _SHA.fullmatch(words[0]):
                return words[0]
    return None


def _read(path: Path) -> str:
    with open(path, "rb") as fh:
        data = fh.read(_MAX_GIT_FILE + 1)
    if len(data) > _MAX_GIT_FILE:
        raise ValueError(f"{path} is too large for a git metadata file")
    return data.decode("utf-8")


def nbtrace_source_sha256() -> str:
    """sha256 over nbtrace's own .py files (relative name and bytes): tells two installs apart
    even with local edits, which a commit name alone cannot."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


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
    checkout = nbtrace_checkout()
    return {
        "argv": list(argv),
        "cwd": os.getcwd(),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "git_sha": {"nbtrace": git_sha(checkout) if checkout is not None else None},
        "nbtrace_source_sha256": nbtrace_source_sha256(),
        "inputs": {role: {"path": os.path.abspath(p), "sha256": sha256_file(p)}
                   for role, p in inputs.items() if p and os.path.isfile(p)},
    }
