"""Bad and hostile trace / spec input through the CLI, in process: one table, one row per case.

Each row: the files to write (name -> bytes), the nbtrace arguments (file names as written),
the exit code, and a substring of what the command says (the one error line on stderr for exit
2, else the report on stdout, where the parser's warnings appear as "A: …" / "B: …"). No row
may raise (a traceback), take more than a few seconds, or print an error of more than one line.
"""

from __future__ import annotations


import pytest

from badinput.framework import check_table_row

C = b"TRACE_C: F_cell 100\nTRACE_C: steps 1\n"
PY = b"TRACE_PY: F_cell 100\nTRACE_PY: steps 1\n"
TWO = b"TRACE_C: a 1\nTRACE_C: b 1\nTRACE_C: c 1\nTRACE_PY: a 1\nTRACE_PY: b 1\nTRACE_PY: c 1\n"
DIGITS = b"9" * 5000


def _chain_spec(n: int) -> bytes:
    """n taps, each after the previous, declared downstream first."""
    rows = [f"  - {{name: t{i}" + (f", after: [t{i - 1}]}}" if i else "}") for i in reversed(range(n))]
    return ("taps:\n" + "\n".join(rows) + "\n").encode()


def _self(data: bytes, *extra: str):
    return {"t.log": data}, ["diff", "t.log", "t.log", *extra]


def _pair(a: bytes, b: bytes, *extra: str):
    return {"a.log": a, "b.log": b}, ["diff", "a.log", "b.log", *extra]


CASES = {
    # ------------------------------------------------------------------ numbers C never prints
    "python-only numeral 1_00": (*_self(b"TRACE_C: F_cell 1_00\nTRACE_C: steps 1\n"), 0,
                                 "B: 1 line(s) not read: t.log:1 (tap 'F_cell' has a non-numeric value '1_00')"),
    "python-only numeral in = form": (*_self(b"TRACE_C:F_cell=1_00\nTRACE_C: steps 1\n"), 0,
                                      "malformed number '1_00'"),
    "fullwidth digits": (*_self("TRACE_C: F_cell １００\nTRACE_C: steps 1\n".encode()), 0, "line(s) not read"),
    # ------------------------------------------------------------------ indices and headers
    "pixel header of 5,000 digits": (*_self(b"TRACE_CONFIG: tracing pixel (spixel=" + DIGITS + b", fpixel=1)\n" + C),
                                     0, "pixel header not read"),
    "pixel header of superscript digits": (*_self("TRACE_CONFIG: tracing pixel (spixel=², fpixel=1)\n".encode() + C),
                                           0, "pixel header not read"),
    "pixel banner of 5,000 digits": (*_self(b"=== TRACE: Pixel (" + DIGITS + b", 1) ===\n" + C), 0, "agree"),
    "loop index of 5,000 digits": (*_self(b"TRACE_C_PHI phi_tic=" + DIGITS + b" k_frac=1\n" + C), 0,
                                   "loop index 'phi_tic' is not an integer"),
    "loop index of superscript digits": (*_self("TRACE_C_PHI phi_tic=² k_frac=1\n".encode() + C), 0,
                                         "loop index 'phi_tic' is not an integer"),
    "indexed loop of superscript digits": (*_self("TRACE_C_SOURCE ²: source_weight 1\n".encode() + C), 0,
                                           "loop index '²' is not an integer"),
    "TRACE_PHI loop line in another prefix's trace": (*_self(b"TRACE_PHI phi_tic=0 k_frac=1\n" + C), 0, "agree"),
    # ------------------------------------------------------------------ JSON Lines
    "JSON nested 100,000 deep": (*_self(b'{"name": "a", "values": ' + b"[" * 100000 + b"]" * 100000 + b"}\n"), 2,
                                 "t.log:1: a JSON line nested too deep"),
    "JSON integer of 5,000 digits": (*_self(b'{"name": "a", "values": [' + DIGITS + b"]}\n"), 2,
                                     "t.log:1: malformed JSON line"),
    "JSON integer beyond the double range": (*_self(b'{"name": "a", "values": [1' + b"0" * 400 + b"]}\n"), 2,
                                             "too large for a double"),
    "JSON line of 10 MB": (*_self(b'{"name": "a", "values": [' + b"1, " * 3_500_000 + b"1]}\n"), 2,
                           "t.log:1: a JSON line of more than 4 MB"),
    "JSON occurrence 2**62": (*_self(b'{"name": "a", "values": [1], "occurrence": 4611686018427387904}\n'), 2,
                              '"occurrence" must be an integer 0..'),
    "JSON occurrence 2**70": (*_self(b'{"name": "a", "values": [1], "occurrence": 1180591620717411303424}\n'), 2,
                              '"occurrence" must be an integer 0..'),
    "JSON pixel 2**70": (*_self(b'{"name": "a", "values": [1], "pixel": [1180591620717411303424, 0]}\n'), 2,
                         '"pixel" must be [slow, fast] integers'),
    "JSON loop index 2**70": (*_self(b'{"name": "a", "values": [1], "loop": {"phi_tic": 1180591620717411303424}}\n'),
                              2, '"loop" must map loop keys to integers'),
    # ------------------------------------------------------------------ hostile sizes
    "100,000-digit token then x": (*_self(b"TRACE_C: F_cell " + b"1" * 100000 + b"x\nTRACE_C: steps 1\n"), 0,
                                   "… (100003 characters)"),
    "100,000-digit Fortran-like token": (*_self(b"TRACE_C: F_cell " + b"1" * 100000 + b"d\nTRACE_C: steps 1\n"), 0,
                                         "line(s) not read"),
    "100,000 zeros": (*_self(b"TRACE_C: F_cell " + b"0" * 100000 + b"\nTRACE_C: steps 1\n"), 0, "agree"),
    "a 10 MB line": (*_self(C + b"TRACE_C: x " + b"1 " * 5_000_000 + b"\nTRACE_C: polar 1\n"), 0,
                     "A: 1 line(s) not read: t.log:3 (a line of more than 4 MB)"),
    "a 10 MB last line without newline": (*_self(C + b"TRACE_C: x " + b"1 " * 5_000_000), 0,
                                          "t.log:3 (a line of more than 4 MB)"),
    "100,000-character prefix": (*_self(b"A" * 100000 + b": F_cell 1\n" + C), 0, "agree"),
    # ------------------------------------------------------------------ encodings
    "UTF-16 with BOM": (*_self(C.decode().encode("utf-16")), 0, "All 2 compared taps agree"),
    "UTF-16 big-endian with BOM": (*_self(b"\xfe\xff" + C.decode().encode("utf-16-be")), 0,
                                   "All 2 compared taps agree"),
    "latin-1 bytes": (*_self(b"TRACE_C: F_cell 100\nTRACE_C: caf\xe9 1\n"), 2, "t.log:2: not UTF-8"),
    # ------------------------------------------------------------------ malformed tap lines
    "no space after the prefix": (*_pair(PY, b"TRACE_PY:F_cell 100\nTRACE_PY: steps 1\n"), 0, "agree"),
    "name glued to its value": (*_self(b"TRACE_PY: F_cell0.5 100\nTRACE_PY: steps 1\n"), 0,
                                "A: 1 line(s) not read: t.log:1 ('F_cell0.5' is not a tap name)"),
    "dotted name": (*_self(b"TRACE_PY: F.cell 100\nTRACE_PY: steps 1\n"), 0,
                    "B: 1 line(s) not read: t.log:1 ('F.cell' is not a tap name)"),
    "tap without value": (*_self(b"TRACE_PY: F_cell\nTRACE_PY: steps 1\n"), 0,
                          "t.log:1 (tap 'F_cell' has no value)"),
    "name = value form": (*_pair(PY, b"TRACE_PY: F_cell = 100\nTRACE_PY: steps 1\n"), 0, "All 2 compared taps agree"),
    "text value in space form": (*_self(b"TRACE_PY: detector_convention MOSFLM\n" + PY), 0, "agree"),
    "no final newline": (*_pair(C, C[:-1]), 0, "B: b.log:2: the last line has no newline"),
    "no final newline, JSON report": (*_pair(C, C[:-1], "--format", "json"), 0,
                                      '"B: b.log:2: the last line has no newline'),
    "no final newline, markdown report": (*_pair(C, C[:-1], "--format", "md"), 0,
                                          "- B: b.log:2: the last line has no newline"),
    "lines not read, JSON report": (*_self(b"TRACE_C: F_cell 1.2e\nTRACE_C: steps 1\n", "--format", "json"), 0,
                                    '"A: 1 line(s) not read: t.log:1 (tap \'F_cell\' has a non-numeric value \'1.2e\')"'),
    # ------------------------------------------------------------------ producers
    "one stray TRACE_C line in a port trace": (*_pair(PY, PY + b"TRACE_C: F_cell 999\n"), 0,
                                               "B: b.log: 1 line(s) with prefix 'TRACE_C' ignored"),
    "two producers in one file": (*_self(TWO), 2, "t.log:4: the file mixes two tap prefixes, TRACE_C"),
    "a unified diff": (*_self(b"--- a.log\n+++ b.log\n@@ -1 +1 @@\n-TRACE_C: F_cell 1\n+TRACE_PY: F_cell 2\n"), 2,
                       "a unified diff of two traces"),
    "no taps at all": (*_self(b"hello\nworld\n"), 2, "no trace lines found"),
    # ------------------------------------------------------------------ tap specs
    "spec nested 200,000 deep": ({"t.log": C, "s.yaml": b"taps: " + b"[" * 200000 + b"]" * 200000 + b"\n"},
                                 ["diff", "t.log", "t.log", "--spec", "s.yaml"], 2, "nested deeper than 64 levels"),
    "spec /dev/zero": ({"t.log": C}, ["diff", "t.log", "t.log", "--spec", "/dev/zero"], 2, "larger than 4 MB"),
    "taps check /dev/zero": ({}, ["taps", "check", "/dev/zero"], 2, "/dev/zero: larger than 4 MB"),
    "spec 3,000-tap chain declared downstream first": ({"s.yaml": _chain_spec(3000)}, ["taps", "check", "s.yaml"],
                                                       0, "3000 taps"),
    "spec shape 1e20": ({"s.yaml": b"taps:\n  - {name: a, shape: [1e20]}\n"}, ["taps", "check", "s.yaml"], 2,
                        "shape entries must be positive integers"),
    "spec shape 2^32 x 2^32": ({"s.yaml": b"taps:\n  - {name: a, shape: [4294967296, 4294967296]}\n"},
                               ["taps", "check", "s.yaml"], 2, "holds more than 1048576 values"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, tmp_path, monkeypatch, capsys):
    check_table_row(*CASES[case], tmp_path, monkeypatch, capsys)
