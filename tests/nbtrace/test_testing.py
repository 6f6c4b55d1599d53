"""nbtrace.testing.assert_traces_match: an AssertionError whose message opens with the root cause."""

from __future__ import annotations

import sys
import tempfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from nbtrace.errors import SpecError
from nbtrace.testing import assert_traces_match, capture_and_match, make_trace

# the plugin comes through its pytest11 entry point; an environment installed before that entry
# point existed gets it here instead (registering it twice would be an error)
REGISTERED = any(e.value == "nbtrace.pytest_plugin" for e in entry_points(group="pytest11"))
pytest_plugins = ["pytester"] + ([] if REGISTERED else ["nbtrace.pytest_plugin"])

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


# ----------------------------------------------------------------------------- the failure message (issue 12)

INCIDENTS = ["r01_hkl_angstrom_lattice", "r07_mosflm_half_pixel", "r12_phi_carry_over", "r14_source_weights",
             "r18_stale_fdump"]


def _message(case: str) -> str:
    with pytest.raises(AssertionError) as exc:
        assert_traces_match(DATA / case / "reference.log", DATA / case / "port.log")
    return str(exc.value)


@pytest.mark.parametrize("case", INCIDENTS)
def test_message_is_short_and_holds_what_a_reader_needs(case):
    msg = _message(case)
    lines = msg.splitlines()
    assert len(lines) <= 15
    assert "first divergence" in lines[0]
    labels = [line.split(":")[0].strip() for line in lines[1:]]
    for needed in ("tap", "where", "reference", "port", "Mismatched elements", "difference", "taps", "full report"):
        assert needed in labels, (needed, msg)
    assert " agree " not in msg.replace(" agree,", "")  # no per-tap agree rows
    # one relative figure, measured as the tolerance measures it: nothing to contradict it
    assert "Greatest relative difference" not in msg and msg.count("would pass with rtol=") == 1


def test_message_shows_both_values_side_by_side_with_the_factor():
    msg = _message("r01_hkl_angstrom_lattice")
    rows = {line.split(":", 1)[0].strip(): line for line in msg.splitlines()[1:]}
    assert "factor port/reference 1e+10" in rows["tap"] and "hkl_frac: introduced (scale)" in rows["tap"]
    ref, port = rows["reference"], rows["port"]
    assert ref.split()[1:] == ["-0.006207639638211582", "0.8332712569369511", "0.5832898798558659"]
    assert port.split()[1:] == ["-62076396.38211582", "8332712569.369512", "5832898798.558659"]
    # component k of each side ends in the same column
    ends = lambda row: [row.index(tok) + len(tok) for tok in row.split()[1:]]  # noqa: E731
    assert ends(ref) == ends(port)
    assert "pixel (40, 57)" in rows["where"] and "reference.log:39" in rows["where"] and "port.log:39" in rows["where"]
    assert "Mismatched elements: 3 / 3 (100.0%)" in msg
    assert rows["taps"].strip().startswith("taps:       1 introduced, 8 inherited, 44 agree")
    assert rows["full report"].endswith(f"nbtrace diff {DATA / 'r01_hkl_angstrom_lattice' / 'reference.log'} "
                                        f"{DATA / 'r01_hkl_angstrom_lattice' / 'port.log'}")


def test_counts_and_relative_figure_agree_for_an_integer_count():
    # the example: "Greatest relative difference: 1" beside "Would pass with rtol=0.5"
    msg = _message("r14_source_weights")
    assert "reference:  2\n" in msg and "port:       4\n" in msg
    assert "would pass with rtol=0.5 " in msg and "difference: up to 2 absolute" in msg
    assert "relative difference: 1" not in msg.lower()


def test_values_that_differ_in_the_last_digit_read_differently():
    a = make_trace([("x", 0.1 + 0.2)], pixel=(1, 1))
    b = make_trace([("x", 0.3)], pixel=(1, 1))
    with pytest.raises(AssertionError) as exc:
        assert_traces_match(a, b, rtol=1e-17, atol=0.0)
    msg = str(exc.value)
    assert "  reference:  0.30000000000000004\n" in msg and "  port:                       0.3\n" in msg
    assert "full report" not in msg  # in-memory traces: no command to give


def test_a_comparison_with_nothing_matched_still_names_both_sides():
    with pytest.raises(AssertionError) as exc:
        assert_traces_match(make_trace([("x", 1.0)], pixel=(1, 1), path="a.log"),
                            make_trace([("y", 1.0)], pixel=(1, 1), path="b.log"))
    msg = str(exc.value)
    assert msg.startswith("Nothing was compared") and len(msg.splitlines()) <= 6
    assert "  reference:  a.log" in msg and "  port:       b.log" in msg


def test_long_vectors_are_cut_in_the_message():
    a = make_trace([("v", tuple(range(1, 21)))], pixel=(1, 1))
    b = make_trace([("v", tuple(range(2, 22)))], pixel=(1, 1))
    with pytest.raises(AssertionError) as exc:
        assert_traces_match(a, b)
    rows = [line for line in str(exc.value).splitlines() if line.startswith(("  reference:", "  port:"))]
    assert all(row.endswith("… (11 more)") for row in rows) and len(rows) == 2


# ----------------------------------------------------------------------------- pytest: traceback and plugin

PLUGIN_ARGS = [] if REGISTERED else ["-p", "nbtrace.pytest_plugin"]


def test_pytest_shows_the_callers_line_not_the_helpers(pytester):
    pytester.makepyfile(test_port=f"""
        from nbtrace.testing import assert_traces_match

        def test_port():
            assert_traces_match(r"{DATA / 'r07_mosflm_half_pixel' / 'reference.log'}",
                                r"{DATA / 'r07_mosflm_half_pixel' / 'port.log'}")
    """)
    result = pytester.runpytest(*PLUGIN_ARGS, "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert ">       assert_traces_match(" in text  # the failing line is the test's own
    assert "nbtrace/testing.py" not in text and "diff_traces(" not in text
    assert "E       AssertionError: `pix0_vector_meters` is the first divergence" in text
    assert "E         port:       0.1  0.00505    -0.005" in text


def test_plugin_fixture_compares_in_one_line(pytester):
    pytester.makepyfile(test_port=f"""
        def test_same(nbtrace_compare):
            nbtrace_compare(r"{DATA / 'identical' / 'reference.log'}", r"{DATA / 'identical' / 'port.log'}")

        def test_diverging(nbtrace_compare):
            nbtrace_compare(r"{DATA / 'r14_source_weights' / 'reference.log'}",
                            r"{DATA / 'r14_source_weights' / 'port.log'}", spec="nanobragg")
    """)
    result = pytester.runpytest(*PLUGIN_ARGS, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    text = result.stdout.str()
    assert "E       AssertionError: `steps` is the first divergence" in text
    assert "nbtrace/pytest_plugin.py" not in text
    assert "E         full report: nbtrace diff --spec nanobragg " in text


FAKE = ROOT / "tests" / "data" / "hunt" / "fake_nanobragg.py"


def test_capture_fixture_runs_both_producers(nbtrace_compare, tmp_path):
    args = ["-detpixels", "16", "-distance", "80"]
    ref, port = nbtrace_compare.capture(args, pixels=[(3, 4), (8, 8)], c_bin=str(FAKE),
                                        port_cmd=f"{sys.executable} {FAKE} --port")
    assert ref.read_text().startswith("TRACE_C:producer=fake") and "TRACE_PY: hkl_frac" in port.read_text()
    assert tmp_path in ref.parents  # the test's own tmp_path: pytest cleans it
    with pytest.raises(AssertionError) as exc:
        nbtrace_compare.capture(args, pixels=[(3, 4)], c_bin=str(FAKE),
                                port_cmd=f"{sys.executable} {FAKE} --port --inject svec-scale")
    msg = str(exc.value)
    assert msg.startswith("`scattering_vec_A_inv` is the first divergence") and len(msg.splitlines()) <= 15
    assert "factor port/reference 1e-10" in msg


def test_capture_and_match_leaves_no_folder_behind_when_it_passes(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ref, port = capture_and_match(["-detpixels", "8"], pixels=[(1, 1)], c_bin=str(FAKE),
                                  port_cmd=f"{sys.executable} {FAKE} --port")
    assert not ref.exists() and list(tmp_path.iterdir()) == []
