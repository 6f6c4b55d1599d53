"""Fixtures for the C reference tests: one build of the shipped sources per session, in a private cache."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from nbtrace.run.cbuild import source_dir


@pytest.fixture(scope="session")
def c_compiler() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("these tests need a C compiler (cc or gcc) on PATH")
    return cc


@pytest.fixture(scope="session")
def nbref(tmp_path_factory, c_compiler) -> Path:
    """The reference binary built by nbtrace.run.cbuild from simulator/c, cached in a temp dir."""
    from nbtrace.run import cbuild

    cache = tmp_path_factory.mktemp("nbref-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("NBTRACE_CACHE", str(cache))
    try:
        return cbuild.ensure_built()
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def tap_header() -> Path:
    return source_dir() / "nbtrace_tap.h"


@pytest.fixture
def run_ref(nbref, tmp_path):
    """run_ref(*args, timeout=60) -> CompletedProcess of the reference, run in a fresh temp dir."""

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(nbref), *map(str, args)], capture_output=True, text=True, cwd=tmp_path,
                              timeout=timeout, env={"OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})

    return run
