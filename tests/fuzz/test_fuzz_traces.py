"""The short fuzz run: 2,000 variants of real logs with a fixed seed, read and diffed in process;
nothing but nbtrace's own one-line errors may come out (the full run: tests/fuzz/fuzz_traces.py)."""

from __future__ import annotations

import importlib.util
import time
import warnings
from pathlib import Path

_spec = importlib.util.spec_from_file_location("fuzz_traces", Path(__file__).with_name("fuzz_traces.py"))
fuzz_traces = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz_traces)


def test_variants_of_real_logs_raise_only_nbtrace_errors():
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy on nan/inf values: not a failure
        failures = fuzz_traces.fuzz(2000, seed=20261203, quiet=True)
    assert not failures, failures[0]
    assert time.perf_counter() - start < 120  # ~10 s on an idle 2-core machine


def test_a_variant_depends_only_on_seed_and_number():
    pool = fuzz_traces.sources()
    assert len(pool) > 100
    assert fuzz_traces.variant(5, 17, pool) == fuzz_traces.variant(5, 17, pool)
    assert fuzz_traces.variant(5, 17, pool) != fuzz_traces.variant(5, 18, pool)
