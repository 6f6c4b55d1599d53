"""Suite-wide settings that make every run of the suite the same run.

- Hypothesis is derandomized and keeps no example database: a fresh clone, a second run and a
  run in shuffled order all draw the same examples, and nothing found once is replayed from a
  hidden ``.hypothesis/`` folder for ever after.
- Temporary files of the whole session (including those of nbtrace subprocesses, through
  TMPDIR) go under pytest's own session folder, which pytest rotates: a test run leaves no
  ``nbtrace-capture-*`` folders in the system temp dir.
- torch's intra-op thread count is put back after each test that changed it.
"""

from __future__ import annotations

import sys
import tempfile

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
