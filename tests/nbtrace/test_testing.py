"""nbtrace.testing.assert_traces_match: an AssertionError whose message opens with the root cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbtrace.errors import SpecError
from nbtrace.testing import assert_traces_match, make_trace

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "incidents"


def test_paths_that_agree_pass():
    assert_traces_match(DATA / "identical" / "reference.log", DATA / "identical" / "port.log")


def test_divergence_message_opens_with_root_cause():
    with pytest.raises(AssertionError) as exc:
        assert_traces_match(DATA / "r01_hkl_angstrom_lattice" / "reference.log",
                            DATA / "r01_hkl_angstrom_lattice" / "port.log")
    msg = str(exc.value)
    assert msg.splitlines()[0].endswith("later taps inherit it.")
    assert msg.startswith("`hkl_frac` is the first divergence: port = reference × 1e+10 in all 3 components")
    assert "Mismatched elements:" in msg


def test_trace_objects_and_spec_path():
    a = make_trace([("x", 1.0)], pixel=(1, 1))
    b = make_trace([("x", 2.0)], pixel=(1, 1))
    assert_traces_match(a, a)
    with pytest.raises(AssertionError, match=r"^`x` is the first divergence"):
        assert_traces_match(a, b)
    spec = ROOT / "tap_specs" / "nanobragg.yaml"
    assert_traces_match(DATA / "identical" / "reference.log", DATA / "identical" / "port.log", spec=spec)


def test_tolerances_pass_through():
    a = make_trace([("x", 1.0)], pixel=(1, 1))
    b = make_trace([("x", 1.001)], pixel=(1, 1))
    assert_traces_match(a, b, rtol=1e-2, atol=0.0)


def test_make_trace_numbers_occurrences_and_loops():
    t = make_trace([("p", (1, 2)), ("p", (3, 4)), (("k", {"phi_tic": 1}), 0.5)], pixel=(2, 3),
                   setup=[("detector_convention", "MOSFLM")])
    assert [r.index.occurrence for r in t.records] == [0, 0, 1, 0]
    assert t.records[0].kind == "string" and t.records[1].kind == "int"
    assert t.records[3].index.loop == (("phi_tic", 1),)
    assert t.pixels == ((2, 3),)


def test_rejects_other_types():
    with pytest.raises(TypeError):
        assert_traces_match(42, 43)


def test_a_shipped_spec_by_name_as_the_cli_takes_it():
    ref, port = DATA / "r01_hkl_angstrom_lattice" / "reference.log", DATA / "r01_hkl_angstrom_lattice" / "port.log"
    assert_traces_match(DATA / "identical" / "reference.log", DATA / "identical" / "port.log", spec="nanobragg")
    with pytest.raises(AssertionError, match="^`hkl_frac` is the first divergence"):
        assert_traces_match(ref, port, spec="nanobragg.yaml")
    with pytest.raises(SpecError, match="no-such-spec: cannot read tap spec"):
        assert_traces_match(ref, port, spec="no-such-spec")
