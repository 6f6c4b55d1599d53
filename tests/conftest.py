"""Suite-wide settings that make every run of the suite the same run.

- Hypothesis is derandomized and keeps no example database: a fresh clone, a second run and a
  run in shuffled order all draw the same examples, and nothing found once is replayed from a
  hidden ``.hypothesis/`` folder for ever after.
- Temporary files of the whole session (including those of nbtrace subprocesses, through
  TMPDIR) go under pytest's own session folder, which pytest rotates: a test run leaves no
  ``nbtrace-capture-*`` folders in the system temp dir.
- torch's intra-op thread count is put back after each test that changed it.
- One build of the C reference per session (`nbref`), in a private cache, for every test that runs it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "nbtrace", derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("nbtrace")


@pytest.fixture(scope="session", autouse=True)
def _session_temp_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("tmp")
    mp = pytest.MonkeyPatch()
    mp.setenv("TMPDIR", str(base))
    mp.setattr(tempfile, "tempdir", str(base))
    yield base
    mp.undo()


@pytest.fixture(autouse=True)
def _torch_thread_count_restored():
    """Running nbsim in-process sets torch's intra-op thread count for the whole process
    (simulator/run.py: one thread per producer); later tests must not inherit it."""
    torch = sys.modules.get("torch")  # never imported here: most tests do not need torch
    before = torch.get_num_threads() if torch is not None else None
    yield
    if before is not None and torch.get_num_threads() != before:
        torch.set_num_threads(before)


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
