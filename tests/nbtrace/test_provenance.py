"""run_metadata.json provenance: the commit is read from .git files, never by running git in a
folder someone else controls (issue 11: a stranger's core.fsmonitor ran during `diff --out`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nbtrace.run import provenance

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "incidents" / "r07_mosflm_half_pixel"
SHA_A, SHA_B = "a" * 40, "b" * 40


def _hostile_repo(folder: Path, marker: Path) -> None:
    """A git repository whose config runs a command whenever git looks at its work tree."""
    git = shutil.which("git")
    assert git, "this test needs git on PATH (it shows what a plain `git status` would run)"
    env = {"PATH": os.environ["PATH"], "HOME": str(folder), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run([git, "init", "-q", str(folder)], check=True, env=env)
    hook = folder / "fsmonitor.sh"
    hook.write_text(f"#!/bin/sh\necho ran >> {marker}\nexit 1\n")
    hook.chmod(0o755)
    subprocess.run([git, "-C", str(folder), "config", "core.fsmonitor", str(hook)], check=True, env=env)
    (folder / "x.txt").write_text("x\n")
    # with a commit, so that HEAD resolves and a provenance probe goes on to `git status`
    ident = ["-c", "user.name=s", "-c", "user.email=s@example.invalid", "-c", "core.fsmonitor="]
    subprocess.run([git, "-C", str(folder), *ident, "add", "x.txt"], check=True, env=env)
    subprocess.run([git, "-C", str(folder), *ident, "commit", "-q", "-m", "x"], check=True, env=env)


def test_a_strangers_fsmonitor_runs_under_plain_git_but_never_under_diff_out(tmp_path, monkeypatch):
    stranger, marker = tmp_path / "bugreport", tmp_path / "marker"
    _hostile_repo(stranger, marker)
    # the attack is real: plain git in that folder runs the stranger's command
    subprocess.run(["git", "status", "--porcelain"], cwd=stranger, capture_output=True,
                   env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"})
    assert marker.exists(), "the hostile repository did not fire: the test would prove nothing"
    marker.unlink()
    # nbtrace working inside it, writing provenance, runs nothing of it
    for name in ("reference.log", "port.log"):
        shutil.copy(DATA / name, stranger / name)
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "nbtrace", "diff", "reference.log", "port.log", "--out", "D"],
                          cwd=stranger, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    meta = json.loads((stranger / "D" / "run_metadata.json").read_text())
    assert not marker.exists()
    assert set(meta["git_sha"]) == {"nbtrace"}  # never the cwd's repository
    assert len(meta["nbtrace_source_sha256"]) == 64


def test_provenance_runs_no_program(monkeypatch):
    import platform

    platform.platform()  # the standard library asks `uname` once per process: not repository code

    def refuse(*a, **kw):
        raise AssertionError(f"provenance started a program: {a[:1]}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(os, "system", refuse)
    meta = provenance.run_metadata(["nbtrace", "diff"], {"a": str(DATA / "reference.log")})
    assert meta["inputs"]["a"]["sha256"]


def _git_layout(tmp_path: Path, head: str, loose: dict | None = None, packed: str | None = None) -> Path:
    checkout = tmp_path / "co"
    git = checkout / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text(head)
    for ref, sha in (loose or {}).items():
        (git / ref).parent.mkdir(parents=True, exist_ok=True)
        (git / ref).write_text(sha + "\n")
    if packed is not None:
        (git / "packed-refs").write_text(packed)
    return checkout


@pytest.mark.parametrize("head, loose, packed, expected", [
    (f"{SHA_A}\n", None, None, SHA_A),  # detached HEAD
    ("ref: refs/heads/main\n", {"refs/heads/main": SHA_B}, None, SHA_B),  # loose ref
    ("ref: refs/heads/main\n", None, f"# pack-refs with: peeled\n{SHA_A} refs/heads/main\n^{SHA_B}\n", SHA_A),
    ("ref: refs/heads/gone\n", None, f"{SHA_A} refs/heads/main\n", None),  # unborn branch
    ("ref: refs/heads/../../../etc/passwd\n", None, None, None),  # a ref never leaves .git
    ("garbage\n", None, None, None),
    ("ref: refs/heads/main\n", {"refs/heads/main": "not a sha"}, None, None),
])
def test_git_sha_reads_head_refs_and_packed_refs(tmp_path, head, loose, packed, expected):
    assert provenance.git_sha(_git_layout(tmp_path, head, loose, packed)) == expected


def test_git_sha_follows_a_linked_worktree(tmp_path):
    main = _git_layout(tmp_path, "ref: refs/heads/main\n", packed=f"{SHA_B} refs/heads/feature\n")
    wt_git = main / ".git" / "worktrees" / "wt"
    wt_git.mkdir(parents=True)
    (wt_git / "HEAD").write_text("ref: refs/heads/feature\n")
    (wt_git / "commondir").write_text("../..\n")
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / ".git").write_text(f"gitdir: {wt_git}\n")
    assert provenance.git_sha(wt) == SHA_B
    assert provenance.git_sha(tmp_path / "nowhere") is None


def test_nbtrace_checkout_commit_matches_git_when_run_from_source():
    checkout = provenance.nbtrace_checkout()
    if checkout is None:  # an installed (non-editable) nbtrace has no checkout to ask about
        assert provenance.run_metadata([], {})["git_sha"] == {"nbtrace": None}
        return
    sha = provenance.git_sha(checkout)
    # git itself, on nbtrace's own checkout, with repository code switched off
    out = subprocess.run(["git", "-c", "core.fsmonitor=", "-c", "core.hooksPath=/dev/null", "rev-parse", "HEAD"],
                         cwd=checkout, capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert out.returncode == 0 and sha == out.stdout.strip()
