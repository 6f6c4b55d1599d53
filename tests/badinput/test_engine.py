"""Bad and odd input to the diff engine through the CLI, in process: one table, one row per case.

Each row: the files to write (name -> bytes), the nbtrace arguments (file names as written), the
exit code, and a substring of what the command says (the one error line on stderr for exit 2,
else the report on stdout). The engine's promises (issue 11): traces that differ never "agree"
(values past 1e154, a port cut short, a tap printed twice, a misspelt tap, missing iterations);
nonsense tolerances and run facts are one usage line with exit 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from badinput.framework import check_table_row

INCIDENTS = Path(__file__).resolve().parents[1] / "data" / "incidents"
REF = (INCIDENTS / "identical" / "reference.log").read_bytes()  # 40 per-pixel taps of one pixel
PORT = (INCIDENTS / "identical" / "port.log").read_bytes()
PHI_REF = (INCIDENTS / "r12_phi_carry_over" / "port.log").read_bytes()  # 4 φ steps, spec physics
PORT_LINES = PORT.splitlines(keepends=True)
PIXEL_AT = next(i for i, ln in enumerate(PORT_LINES) if ln.startswith(b"TRACE_CONFIG"))
PER_PIXEL = PORT_LINES[PIXEL_AT + 1:]


def _pair(a: bytes, b: bytes, *extra: str):
    return {"a.log": a, "b.log": b}, ["diff", "a.log", "b.log", *extra]


def _one(tap: str, a: str, b: str, *extra: str):
    return _pair(f"TRACE_C: {tap} {a}\nTRACE_C: steps 1\n".encode(),
                 f"TRACE_PY: {tap} {b}\nTRACE_PY: steps 1\n".encode(), *extra)


def _port(lines) -> bytes:
    return b"".join(lines)


def _renamed(old: bytes, new: bytes) -> bytes:
    return PORT.replace(b"TRACE_PY: " + old + b" ", b"TRACE_PY: " + new + b" ")


CASES = {
    # ------------------------------------------------------------------ arithmetic past 1e154
    "F_cell 2e154 vs 100": (*_one("F_cell", "100", "2e154"), 1, "port = reference ×2e+152"),
    "1e308 vs -1e308": (*_one("F_cell", "1e308", "-1e308"), 1, "a sign flip"),
    "one component 1e200 vs 8.7e7": (*_one("scattering_vec_A_inv", "8.7e7 1 2", "1e200 1 2"), 1,
                                     "root cause scattering_vec_A_inv"),
    "the largest double vs half of it": (*_one("F_cell", "1.7976931348623157e308", "8.98846567431158e307"), 1,
                                         "×0.5"),
    "inf vs -inf": (*_one("F_cell", "inf", "-inf"), 1, "non-finite on both sides, but not the same"),
    "inf vs inf": (*_one("F_cell", "inf", "inf"), 0, "All 2 compared taps agree"),
    "nan vs nan": (*_one("F_cell", "nan", "nan"), 0, "All 2 compared taps agree"),
    "-0 vs 0": (*_one("pixel_pos_meters", "0.1 -0 0", "0.1 0 -0"), 0, "All 2 compared taps agree"),
    # no spec fits these names, so there is no absolute floor: subnormals compare relatively
    "subnormal vs twice it (no spec)": (*_pair(b"TRACE_C: mystery 5e-324\n", b"TRACE_PY: mystery 1e-323\n"), 1,
                                        "port = reference ×2"),
    # ------------------------------------------------------------------ a port cut short
    "port cut halfway through the pixel block": (*_pair(REF, _port(PORT_LINES[:PIXEL_AT + 21])), 1,
                                                 "B never printed 20 tap(s) that A printed for a traced pixel"),
    "port keeps only its first 10 taps": (*_pair(REF, _port(PORT_LINES[:PIXEL_AT + 11])), 1,
                                          "B never printed 30 tap(s) that A printed for a traced pixel"),
    "port keeps only its first 5 taps": (*_pair(REF, _port(PORT_LINES[:PIXEL_AT + 6])), 1, "One-sided comparison"),
    "port lacks only the last tap": (*_pair(REF, _port(PORT_LINES[:-1])), 1,
                                     "B never printed 1 tap(s) that A printed for a traced pixel: "
                                     "floatimage_accumulated"),
    "port cut right after its prefix": (*_pair(REF, _port(PORT_LINES[:-1]) + b"TRACE_PY:"), 1,
                                        "floatimage_accumulated"),
    # ------------------------------------------------------------------ taps printed more often
    "F_cell printed twice by the port": (*_pair(REF, PORT.replace(b"TRACE_PY: F_cell 100\n",
                                                                  b"TRACE_PY: F_cell 100\nTRACE_PY: F_cell 999\n")),
                                         1, "F_cell: A printed 1 record(s) for pixel (40, 57), B printed 2"),
    "F_cell printed twice by the reference": (*_pair(REF.replace(b"TRACE_C: F_cell 100\n",
                                                                 b"TRACE_C: F_cell 100\nTRACE_C: F_cell 100\n"), PORT),
                                              1, "first repeat (subpixel / layer block) absent from B"),
    "port prints phi step 0 of 4": (*_pair(PHI_REF, b"".join(ln for ln in PHI_REF.splitlines(keepends=True)
                                                             if not ln.startswith(b"TRACE_PY_PHI phi_tic=")
                                                             or ln.startswith(b"TRACE_PY_PHI phi_tic=0 "))),
                                    1, "first loop iteration absent from B: pixel (40, 57), phi_tic 1"),
    # ------------------------------------------------------------------ near-miss names
    "F_cell with an accent": (*_pair(REF, _renamed(b"F_cell", "F_céll".encode())), 1,
                              "B printed F_céll (b.log:45): likely a misspelling of F_cell (accents)"),
    "F_cell in another case": (*_pair(REF, _renamed(b"F_cell", b"f_Cell")), 1,
                               "likely a misspelling of F_cell (case)"),
    "F_cell one letter short": (*_pair(REF, _renamed(b"F_cell", b"F_cel")), 1,
                                "likely a misspelling of F_cell (edit distance 1)"),
    "two letters swapped": (*_pair(REF, _renamed(b"obliquity_factor", b"obliquity_fatcor")), 1,
                            "likely a misspelling of obliquity_factor (edit distance 1)"),
    # ------------------------------------------------------------------ tolerances
    "negative rtol": (*_pair(REF, PORT, "--rtol", "-1e-9", "--atol", "0"), 2,
                      "--rtol: a tolerance must be a finite number ≥ 0, got -1e-09"),
    "negative atol": (*_pair(REF, PORT, "--rtol", "1e-9", "--atol", "-1"), 2,
                      "--atol: a tolerance must be a finite number ≥ 0"),
    "rtol nan": (*_pair(REF, PORT, "--rtol", "nan", "--atol", "0"), 2, "got nan"),
    "atol inf": (*_pair(REF, PORT, "--rtol", "1e-9", "--atol", "inf"), 2, "got inf"),
    "zero tolerance is exact agreement": (*_pair(REF, PORT, "--rtol", "0", "--atol", "0"), 0, "agree"),
    # ------------------------------------------------------------------ run facts
    "context pixel_size=nan": (*_pair(REF, PORT, "--context", "pixel_size=nan"), 2,
                               "--context: pixel_size must be a positive finite number, got nan"),
    "context pixel_size=-1": (*_pair(REF, PORT, "--context", "pixel_size=-1e-4"), 2, "pixel_size must be a positive"),
    "context N=5,5,0": (*_pair(REF, PORT, "--context", "N=5,5,0"), 2, "N must be a positive finite number, got 5,5,0"),
    "context oversample=inf": (*_pair(REF, PORT, "--context", "oversample=inf"), 2, "oversample must be"),
    "context oversample=two": (*_pair(REF, PORT, "--context", "oversample=two"), 2, "oversample must be a number"),
    "context of another key with inf": (*_pair(REF, PORT, "--context", "weird=inf"), 2, "weird must be a finite number"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, tmp_path, monkeypatch, capsys):
    check_table_row(*CASES[case], tmp_path, monkeypatch, capsys)
