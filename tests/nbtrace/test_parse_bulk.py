"""The bulk reader (nbtrace.engine.parse.blocks + LineParser._bulk_run) against the line reader: on
generated logs full of odd lines, both must give the same trace bit for bit, or the same error."""

from __future__ import annotations

import math
import random
import sys

import numpy as np
import pytest

import nbtrace.engine.parse.lines as lines_mod
from nbtrace.errors import TraceError
from nbtrace.engine.parse import blocks, parse_text, read_trace
from nbtrace.engine.parse.numbers import _digits

ODD_TOKENS = ["0.002825", "1.000e+02", "7", "-7", "+7", "inf", "-inf", "+inf", "nan", "-nan", "0.000",
              "0e0", "-0", "1e5", "1.5E-05", "-.5", "+.5", "+0.00120", "0.0", "12.5", "1_000.5", "100",
              ".000", "-0.000e+00", "Infinity", "NaN", "5.0999999999999996", "1.0000000000000000e-10",
              "1e-310", "4.9406564584124654e-324", "1.7976931348623157e+308", "1e999", "1.", "0.", "-0.e5",
              "00012", "0.000120", "1_0", "1e0005"]


def test_token_digits_follow_the_per_token_rule():
    vb = " ".join(ODD_TOKENS).encode() + b"\n"
    length = np.array([len(t) for t in ODD_TOKENS], dtype=np.int64)
    assert blocks.token_digits(vb, length).tolist() == [_digits(t) for t in ODD_TOKENS]


def _value(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.6:
        return format(rng.uniform(-1e3, 1e3) * 10 ** rng.randint(-12, 12), rng.choice([".17g", ".15g", "g", ".6e"]))
    if roll < 0.75:
        return str(rng.randint(-5, 500))
    return rng.choice(ODD_TOKENS)


NAMES = ["pix0_vector_meters", "hkl_frac", "F_latt", "steps", "oversample_thick", "oversample_polar",
         "scattering_vec_A_inv", "x", "name_that_is_longer_than_thirty_two_bytes_here", "_n2"]
ARITY = {name: (3 if i % 3 == 0 else 1) for i, name in enumerate(NAMES)}


def _odd_line(rng: random.Random, prefix: str) -> str:
    """A line the bulk reader must leave to the line reader (or read exactly as it would)."""
    name = rng.choice(NAMES[:7])
    vals = " ".join(_value(rng) for _ in range(ARITY[name]))
    if rng.random() < 0.02:  # lines that make the whole log an error (at the end)
        return rng.choice([
            f"{prefix}: {name} {vals} trailing junk",
            f"{prefix}: {name} 0x10",
            f"{prefix}: {name} 1.2.3",
            f"{prefix}: {name}",
            f"{prefix}: {name} {vals} 1",  # an arity change
            f"OTHER_PREFIX: {name} {vals}",
        ])
    long_name = NAMES[8]
    return rng.choice([
        f"{prefix}: {name} {vals}\t",
        f"{prefix}:  {name} {vals}",
        f"{prefix}: {name}  {vals}",
        f"{prefix}: {name} {vals} ",
        f" {prefix}: {name} {vals}",
        f"{prefix}: {name}\t{vals}",
        f"{prefix}: {long_name} {_value(rng)}",
        f"{prefix}: 9lives 1",
        f"{prefix}: naïve 1.5",
        f"{prefix}: x ٣.٥",
        f"{prefix}:{name}={vals}",
        f"{prefix}:Rx=[1 0 0; 0 1 0; 0 0 1]",
        f"{prefix}:mapping=Fbeam←Ybeam_mm(+0.5px)",
        f"{prefix}_PHI phi_tic={rng.randint(0, 3)} k_frac={_value(rng)} F_latt={_value(rng)}",
        f"{prefix}_SOURCE {rng.randint(0, 3)}: source_weight 1",
        f"TRACE: {name} {vals}",
        "TRACE:   a_star = [0.01, 0, 0] |a_star| = 0.01",
        "FORT: n 1.5D+00",
        "TRACE_CONFIG: tracing pixel (fpixel=3, spixel=4)",
        "TRACE_CONFIG: tracing pixel (spixel=-1, fpixel=2)",
        "TRACE_CONFIG: tracing pixel (spixel=1234567890123, fpixel=2)",
        "TRACE_CONFIG: tracing pixel (spixel=0012, fpixel=2) ",
        "TRACE_CONFIG: something else entirely",
        "TRACE_CONFIG:  tracing pixel (spixel=5, fpixel=6)",
        "=== TRACE Pixel (7, 8) [slow, fast]",
        "",
        "   ",
        "\t",
        "WARNING: progress 50%",
        "\x0c",
        "\x85 \u00a0",
    ])


def _clean_line(rng: random.Random, prefix: str, pixel: list) -> str:
    if rng.random() < 0.08:
        pixel[0] += 1
        return f"TRACE_CONFIG: tracing pixel (spixel={pixel[0]}, fpixel={rng.randint(0, 9)})"
    name = rng.choice(NAMES[:8] + NAMES[9:])
    return f"{prefix}: {name} " + " ".join(_value(rng) for _ in range(ARITY[name]))


def _log(seed: int, odd: float) -> str:
    rng = random.Random(seed)
    prefix = rng.choice(["TRACE_C", "TRACE_PY", "MYSIM_REF"])
    pixel = [0]
    out = [f"{prefix}:producer=test"] if rng.random() < 0.5 else []
    for _ in range(rng.randint(50, 400)):
        out.append(_odd_line(rng, prefix) if rng.random() < odd else _clean_line(rng, prefix, pixel))
    text = "\n".join(out)
    if rng.random() < 0.8:
        text += "\n"
    if rng.random() < 0.1:
        text = "\ufeff" + text
    if rng.random() < 0.1:
        text = text.replace("\n", rng.choice(["\r\n", "\r"]))
    return text


def _read(text: str, tmp_path=None):
    try:
        if tmp_path is None:
            return parse_text(text, path="gen.log")
        path = tmp_path / "gen.log"
        path.write_bytes(text.encode("utf-8"))
        return read_trace(path)
    except TraceError as exc:
        return exc.one_line()


def assert_same_trace(x, y) -> None:
    """Equal traces, values compared bit for bit (nan included)."""
    if isinstance(x, str) or isinstance(y, str):
        assert x == y
        return
    assert (x.path, x.prefix, x.dialect, x.pixels, x.context, x.meta) == (y.path, y.prefix, y.dialect, y.pixels,
                                                                         y.context, y.meta)
    cx, cy = x.columns(), y.columns()
    assert cx.names == cy.names and cx.contexts == cy.contexts
    for field in ("name", "context", "occurrence", "line", "offsets", "sigdigits", "kind"):
        assert np.array_equal(getattr(cx, field), getattr(cy, field)), field
    assert np.array_equal(cx.values.view(np.int64), cy.values.view(np.int64))
    assert x.records.extras.keys() == y.records.extras.keys()
    for pos in x.records.extras:
        rx, ry = x.records.extras[pos], y.records.extras[pos]
        assert rx._replace(values=()) == ry._replace(values=())
        assert np.array_equal(np.array(rx.values).view(np.int64), np.array(ry.values).view(np.int64))


def _both(text: str, monkeypatch, tmp_path=None, block: int = 97, min_run: int = 1):
    monkeypatch.setattr(lines_mod, "BLOCK_BYTES", block)
    monkeypatch.setattr(lines_mod, "MIN_RUN", min_run)
    bulk = _read(text, tmp_path)
    monkeypatch.setattr(lines_mod, "MIN_RUN", 10**9)
    return bulk, _read(text, tmp_path)


@pytest.mark.parametrize("seed", range(60))
def test_bulk_reader_equals_line_reader_on_generated_logs(seed, monkeypatch):
    odd = [0.0, 0.01, 0.05, 0.2][seed % 4]
    text = _log(seed, odd)
    bulk, by_line = _both(text, monkeypatch, block=[37, 97, 4096][seed % 3], min_run=1 + seed % 5)
    assert_same_trace(bulk, by_line)


@pytest.mark.parametrize("seed", range(8))
def test_bulk_reader_equals_line_reader_reading_files(seed, monkeypatch, tmp_path):
    text = _log(1000 + seed, [0.0, 0.02][seed % 2])
    bulk, by_line = _both(text, monkeypatch, tmp_path, block=64)
    assert_same_trace(bulk, by_line)


def test_clean_generated_logs_do_go_through_the_bulk_reader(monkeypatch):
    calls = []
    real = lines_mod.LineParser._bulk_run
    monkeypatch.setattr(lines_mod.LineParser, "_bulk_run", lambda self, *a: calls.append(real(self, *a)) or calls[-1])
    # "1_0" is not a number C prints: a log holding one is not clean
    monkeypatch.setattr(sys.modules[__name__], "ODD_TOKENS", [t for t in ODD_TOKENS if "_" not in t])
    text = _log(7, 0.0)
    t = parse_text(text)
    assert calls and all(calls) and len(t.records) > 40


def test_odd_numbers_read_the_same_in_bulk(monkeypatch):
    body = "".join(f"TRACE_C: v{i} {tok}\n" for i, tok in enumerate(ODD_TOKENS))
    text = "TRACE_CONFIG: tracing pixel (spixel=1, fpixel=2)\n" + body * 3
    bulk, by_line = _both(text, monkeypatch)
    assert_same_trace(bulk, by_line)
    by = {r.name: r for r in bulk.records if r.index.occurrence == 0}
    inf = by[f"v{ODD_TOKENS.index('-inf')}"]
    assert inf.values == (-math.inf,) and inf.kind == "number" and inf.sigdigits == 17
    assert by[f"v{ODD_TOKENS.index('-7')}"].kind == "int"
    # "1_0" and "1_000.5": Python reads them, C never prints them: not numbers, not read, reported
    assert f"v{ODD_TOKENS.index('1_0')}" not in by and f"v{ODD_TOKENS.index('1_000.5')}" not in by
    assert "6 line(s) not read" in bulk.meta["warnings"][0] and "'1_0'" in bulk.meta["warnings"][0]
    assert math.copysign(1, by[f"v{ODD_TOKENS.index('-nan')}"].values[0]) == -1
    assert len(bulk.records) == 3 * (len(ODD_TOKENS) - 2)
    assert [r.index.occurrence for r in bulk.records if r.name == "v0"] == [0, 1, 2]


def test_a_bad_value_deep_in_a_bulk_run_names_its_line(monkeypatch):
    lines = [f"TRACE_C: R_distance_meters {0.5 + i:.17g}" for i in range(500)]
    lines[321] = "TRACE_C: R_distance_meters 0.5x"
    monkeypatch.setattr(lines_mod, "BLOCK_BYTES", 1000)
    t = parse_text("\n".join(lines) + "\n", path="big.log")  # not read, reported: never a refusal
    assert "1 line(s) not read: big.log:322 (tap 'R_distance_meters' has a non-numeric value '0.5x')" \
        in t.meta["warnings"]
    assert len(t) == 499


def test_a_log_ending_mid_line_is_read_as_the_line_reader_reads_it(monkeypatch):
    text = "".join(f"TRACE_C: F_latt {i}.25\n" for i in range(200)) + "TRACE_C: F_latt 3."
    bulk, by_line = _both(text, monkeypatch)
    assert_same_trace(bulk, by_line)
    assert any("no newline" in w for w in bulk.meta["warnings"])


@pytest.mark.parametrize("via", ["text", "file"])
@pytest.mark.parametrize("ending", ["\r\n", "\r", "mixed"])
def test_carriage_returns_read_as_universal_newlines(ending, via, monkeypatch, tmp_path):
    """"\r\n" line ends are read in bulk; a lone "\r" (a line break of its own) sends the rest
    of the stream to the line reader; either way the trace is the line reader's."""
    calls = []
    real = lines_mod.LineParser._bulk_run
    monkeypatch.setattr(lines_mod.LineParser, "_bulk_run", lambda self, *a: calls.append(real(self, *a)) or calls[-1])
    body = [f"TRACE_C: F_latt {i}.25" for i in range(300)]
    if ending == "mixed":
        text = "\r\n".join(body[:150]) + "\r\n" + "\n".join(body[150:]) + "\rTRACE_C: F_latt 7\r"
    else:
        text = ending.join(body) + ending
    bulk, by_line = _both(text, monkeypatch, tmp_path if via == "file" else None, block=511, min_run=4)
    assert_same_trace(bulk, by_line)
    assert len(bulk.records) == 300 + (ending == "mixed")
    assert any(calls) == (ending != "\r")


PIECES = [b"TRACE_C: ", b"TRACE_CONFIG: tracing pixel (spixel=", b"1", b", fpixel=", b")", b"\n", b"\r\n", b"\r",
          b" ", b"  ", b"\t", b"x", b"F_latt", b"1.5", b"-inf", b"nan", b"e", b".", b":", b"=", b"\x00", b"\xff",
          b"\xc3\xa9", b"TRACE: ", b"TRACE_C_PHI phi_tic=1 k=2", b"0", b"_", b"TRACE_PY: ", b"\xef\xbb\xbf", b"1e5",
          b"\x0c", b"abc"]


@pytest.mark.parametrize("seed", range(20))
def test_bulk_reader_equals_line_reader_on_byte_soup(seed, monkeypatch, tmp_path):
    """Files glued from trace fragments, control bytes, bad UTF-8 and stray carriage returns:
    the same trace or the same one-line error, never an exception of another kind."""
    rng = random.Random(seed)
    for k in range(5):
        data = b"".join(rng.choice(PIECES) for _ in range(rng.randint(1, 300)))
        path = tmp_path / f"soup{k}.log"
        path.write_bytes(data)

        def read():
            try:
                return read_trace(path)
            except TraceError as exc:
                return exc.one_line()

        monkeypatch.setattr(lines_mod, "BLOCK_BYTES", rng.choice([16, 64, 4096]))
        monkeypatch.setattr(lines_mod, "MIN_RUN", rng.choice([1, 2, 5]))
        bulk = read()
        monkeypatch.setattr(lines_mod, "MIN_RUN", 10**9)
        assert_same_trace(bulk, read())
