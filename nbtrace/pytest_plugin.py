"""pytest plugin (entry point ``pytest11``): the ``nbtrace_compare`` fixture.

Compare two traces in one line::

    def test_port_matches(nbtrace_compare):
        nbtrace_compare("ref.log", "port.log")                  # paths or Trace objects

or capture both producers on the same nanoBragg arguments and compare them::

    def test_pixel(nbtrace_compare):
        nbtrace_compare.capture(["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100"],
                                pixels=[(40, 57)])

A failure is an AssertionError of about ten lines: the root cause, the two values side by side,
the factor, the counts and where (see nbtrace.testing.failure_message). The captured traces go
to the test's own ``tmp_path``, so pytest removes them with its other temporary files.

Loaded in every pytest run of an environment where nbtrace is installed, this module imports
nothing heavy until the fixture is used.
"""

from __future__ import annotations

from pathlib import Path

import pytest


class TraceComparer:
    """What the ``nbtrace_compare`` fixture returns."""

    def __init__(self, workdir: Path):
        self._workdir = workdir
        self._runs = 0

    def __call__(self, reference, port, spec=None, **kwargs) -> None:
        """assert_traces_match(reference, port, spec, **kwargs)."""
        __tracebackhide__ = True
        from nbtrace.testing import assert_traces_match

        assert_traces_match(reference, port, spec, **kwargs)

    def capture(self, nb_args, *, pixels, spec=None, **kwargs) -> tuple[Path, Path]:
        """Run the reference and the port (nbtrace.run.capture) on ``nb_args``, tracing
        ``pixels``, and assert the traces match; returns (reference trace, port trace).
        kwargs: c_bin, port_cmd, inject, dtype, timeout, rtol, atol."""
        __tracebackhide__ = True
        from nbtrace.testing import capture_and_match

        self._runs += 1
        out = self._workdir / f"nbtrace-capture-{self._runs}"
        return capture_and_match(nb_args, pixels=pixels, out_dir=out, spec=spec, **kwargs)


@pytest.fixture
def nbtrace_compare(tmp_path) -> TraceComparer:
    """Assert that two traces match, or capture the reference and the port and assert it."""
    return TraceComparer(tmp_path)
