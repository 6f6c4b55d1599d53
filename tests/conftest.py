"""Suite-wide settings that make every run of the suite the same run.

- Hypothesis is derandomized and keeps no example database: a fresh clone, a second run and a
  run in shuffled order all draw the same examples, and nothing found once is replayed from a
  hidden ``.hypothesis/`` folder for ever after.
- Temporary files of the whole session (including those of nbtrace subprocesses, through
  TMPDIR) go under pytest's own session folder, which pytest rotates: a test run leaves no
  ``nbtrace-capture-*`` folders in the system temp dir.
"""

from __future__ import annotations

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

