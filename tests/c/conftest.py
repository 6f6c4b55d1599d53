"""Fixtures for the C reference tests (the shared C build, `nbref`, is in tests/conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nbtrace.run.cbuild import source_dir


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
