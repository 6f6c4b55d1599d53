"""The columnar trace: LazyRecords builds exactly the records a list of TapRecords would hold,
Trace.columns() agrees between parsed and hand-built traces, and read_traces (B parsed in a
worker process) returns what two read_trace calls return, errors included."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import nbtrace.engine.parse as parse_mod
from nbtrace.errors import TraceError
from nbtrace.engine.model import LazyRecords, RecordColumns, Trace
from nbtrace.engine.parse import parse_text, read_trace, read_traces

DATA = Path(__file__).resolve().parents[1] / "data"
WILD_C = DATA / "wild" / "at002_c_trace_pixel_64_79.log"
WILD_PY = DATA / "wild" / "at002_py_trace_pixel_64_79.log"

MIXED = """\
TRACE_C:detector_convention=MOSFLM
TRACE_C:Rx=[1 0 0; 0 1 0; 0 0 1]
TRACE_CONFIG: tracing pixel (spixel=2, fpixel=3)
TRACE_C: pix0_vector_meters 0.5 0.01285 -0.01285
TRACE_C: hkl_rounded 0 1 1
TRACE_C: F_latt 1.0D+00
TRACE_C_PHI phi_tic=1 k_frac=1.5 F_latt=2.25
TRACE_C: pix0_vector_meters 0.5 0.01285 -0.012850
TRACE_C: steps -inf
"""


def test_lazy_records_build_the_same_records_in_every_access_pattern():
    t = parse_text(MIXED)
    recs = t.records
    assert isinstance(recs, LazyRecords) and len(recs) == 9
    listed = list(recs)
    assert [r.name for r in listed] == ["detector_convention", "Rx", "pix0_vector_meters", "hkl_rounded",
                                        "F_latt", "k_frac", "F_latt", "pix0_vector_meters", "steps"]
    assert recs[-1] == listed[8] and recs[2:4] == tuple(listed[2:4])
    assert recs == tuple(listed) and recs.materialize() == tuple(listed)
    assert (recs + ()) == tuple(listed) and isinstance(recs + (), tuple)
    with pytest.raises(IndexError):
        recs[9]
    second = recs[7]
    assert second.index.occurrence == 1 and second.index.pixel == (2, 3) and second.sigdigits == 5
    assert second.loc.line == 8 and second.dialect == "space" and second.kind == "number"
    assert recs[3].kind == "int" and recs[3].sigdigits == 17 and recs[3].values == (0.0, 1.0, 1.0)
    assert recs[1].kind == "matrix" and recs[1].shape == (3, 3)
    assert recs[6].dialect == "loop" and recs[6].index.loop == (("phi_tic", 1),) and recs[6].values == (2.25,)
    assert recs[4].dialect == "space" and recs[4].values == (1.0,) and recs[4].index.occurrence == 0
    assert recs[8].kind == "number" and recs[8].values == (-math.inf,) and recs[8].sigdigits == 17


def test_columns_of_a_parsed_trace_equal_columns_built_from_its_records():
    t = read_trace(WILD_C)
    plain = replace(t, records=tuple(t.records))
    got, want = t.columns(), plain.columns()
    assert isinstance(want, RecordColumns) and want is plain.columns()  # built once, then cached
    for field in ("occurrence", "line", "offsets", "sigdigits", "kind"):
        assert np.array_equal(getattr(got, field), getattr(want, field)), field
    assert np.array_equal(got.values, want.values, equal_nan=True)
    assert [got.names[i] for i in got.name] == [want.names[i] for i in want.name]
    assert [got.contexts[i] for i in got.context] == [want.contexts[i] for i in want.context]
    assert t.names() == plain.names()


def test_format_digits_and_dialect_counts_come_from_the_columns():
    t = parse_text(MIXED)
    assert t.meta["dialects"] == {"eq": 2, "space": 5, "loop": 2}
    assert t.meta["format_digits"] == {"space": 5, "loop": 3}  # "0.012850"; "2.25"


def _same_trace(x: Trace, y: Trace) -> None:
    assert x.path == y.path and x.prefix == y.prefix and x.pixels == y.pixels
    assert x.context == y.context and x.meta == y.meta
    # records equal, values bit for bit (a nan is not equal to itself: compare the bits)
    assert len(x.records) == len(y.records)
    for rx, ry in zip(x.records, y.records):
        assert rx._replace(values=()) == ry._replace(values=())
        assert np.array_equal(np.array(rx.values).view(np.int64), np.array(ry.values).view(np.int64))


@pytest.mark.parametrize("threshold", [0, 10**12], ids=["worker", "serial"])
def test_read_traces_equals_two_read_trace_calls(threshold, monkeypatch):
    monkeypatch.setattr(parse_mod, "PARALLEL_MIN_BYTES", threshold)
    a, b = read_traces(WILD_C, WILD_PY)
    _same_trace(a, read_trace(WILD_C))
    _same_trace(b, read_trace(WILD_PY))


def test_read_traces_worker_error_keeps_file_line_and_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(parse_mod, "PARALLEL_MIN_BYTES", 0)
    bad = tmp_path / "bad.log"  # two producers in one file: refused (a bad value is only a warning now)
    bad.write_text("TRACE_C: a 1\nTRACE_C: b 1\nTRACE_C: c 1\nTRACE_PY: a 1\nTRACE_PY: b 1\nTRACE_PY: c 1\n")
    with pytest.raises(TraceError) as exc:
        read_traces(WILD_C, bad)
    assert exc.value.where == f"{bad}:4" and "mixes two tap prefixes" in exc.value.what
    assert exc.value.hint


def test_read_traces_error_of_a_comes_first(tmp_path, monkeypatch):
    monkeypatch.setattr(parse_mod, "PARALLEL_MIN_BYTES", 0)
    with pytest.raises(TraceError) as exc:
        read_traces(tmp_path / "missing.log", tmp_path / "also_missing.log")
    assert exc.value.where == str(tmp_path / "missing.log")


def _chunked_log(n_pixels: int, subpixels: int = 2) -> str:
    out = []
    for p in range(n_pixels):
        out.append(f"TRACE_CONFIG: tracing pixel (spixel={p}, fpixel={2 * p})")
        for sub in range(subpixels):  # subpixel blocks: occurrences 0, 1, ...
            out.append(f"TRACE_C: pixel_pos_meters {0.1 + p:.17g} {1e-5 * p:.6e} -0.{p:03d}")
            out.append(f"TRACE_C: hkl_rounded {p} -1 {sub}")
        out.append(f"TRACE_C: I_pixel_final {p * 1.5:g}")
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("subpixels", [1, 2])
def test_bulk_runs_give_the_records_the_line_reader_gives(subpixels, monkeypatch):
    import nbtrace.engine.parse.lines as lines_mod

    text = _chunked_log(1000, subpixels)
    monkeypatch.setattr(lines_mod, "BLOCK_BYTES", 20_000)  # several blocks
    bulk_calls = []
    real_bulk = lines_mod.LineParser._bulk_run
    monkeypatch.setattr(lines_mod.LineParser, "_bulk_run",
                        lambda self, *args: bulk_calls.append(real_bulk(self, *args)) or bulk_calls[-1])
    bulk = parse_text(text)
    assert bulk_calls.count(True) >= 3  # read in bulk, block after block
    monkeypatch.setattr(lines_mod, "MIN_RUN", 10**9)  # no run is long enough: all line by line
    by_line = parse_text(text)
    _same_trace(bulk, by_line)
    assert bulk.records[-1].index == by_line.records[-1].index
    assert bulk.records[1].kind == "int" and bulk.records[-1].index.occurrence == 0
    if subpixels == 2:
        assert bulk.records[3].index.occurrence == 1


def test_bulk_chunk_with_a_bad_value_reports_its_line():
    text = _chunked_log(700).splitlines()
    text[3000] = "TRACE_C: hkl_rounded 1 x 2"
    t = parse_text("\n".join(text) + "\n", path="big.log")  # not read, reported: never a refusal
    assert "1 line(s) not read: big.log:3001 (tap 'hkl_rounded' has a non-numeric value 'x')" in t.meta["warnings"]
    assert 3001 not in {r.loc.line for r in t.records}


LOGS = sorted(p for p in DATA.rglob("*.log") if p.stat().st_size < 2_000_000)


@pytest.mark.parametrize("path", LOGS, ids=lambda p: str(p.relative_to(DATA)))
def test_every_shipped_log_reads_the_same_in_small_bulk_runs(path, monkeypatch):
    """Runs of 2 lines and blocks of 300 bytes send most of each log through the bulk reader
    (whatever it refuses goes line by line): the trace, or the error, must be exactly the line
    reader's."""
    import nbtrace.engine.parse.lines as lines_mod

    def read():
        try:
            return read_trace(path)
        except TraceError as exc:
            return exc.one_line()

    monkeypatch.setattr(lines_mod, "MIN_RUN", 2)
    monkeypatch.setattr(lines_mod, "BLOCK_BYTES", 300)
    bulk = read()
    monkeypatch.setattr(lines_mod, "MIN_RUN", 10**9)
    by_line = read()
    if isinstance(by_line, str):
        assert bulk == by_line
    else:
        _same_trace(bulk, by_line)


def test_read_traces_worker_crash_falls_back_to_reading_b_here(monkeypatch, capfd):
    monkeypatch.setattr(parse_mod, "PARALLEL_MIN_BYTES", 0)

    def broken_read(path, dialect=None, prefix=None):
        if Path(path) == WILD_PY and not broken_read.in_parent:
            raise RuntimeError("worker bug")
        return real_read(path, dialect, prefix)

    real_read = parse_mod.read_trace
    broken_read.in_parent = False
    monkeypatch.setattr(parse_mod, "read_trace", broken_read)
    worker = parse_mod._start_worker(WILD_PY, None, None)  # forked now: the child sees in_parent False
    assert worker is not None
    broken_read.in_parent = True
    proc, conn, shared = worker
    assert parse_mod._worker_result(proc, conn, shared) is None  # "crash": the caller reads B itself
    proc.join()
    assert proc.exitcode == 0 and "Traceback" not in capfd.readouterr().err
    _, b = read_traces(WILD_C, WILD_PY)
    _same_trace(b, real_read(WILD_PY))


@pytest.mark.parametrize("how", ["shared", "no_mapping", "too_small"])
def test_read_traces_without_shared_memory_pickles_the_columns(how, monkeypatch):
    """The worker hands B back through a shared mapping; when there is none (the system refused
    it) or it is too small, B's columns are pickled instead — the same trace either way."""
    import mmap

    monkeypatch.setattr(parse_mod, "PARALLEL_MIN_BYTES", 0)
    if how == "no_mapping":
        monkeypatch.setattr(parse_mod, "_shared_memory", lambda path: None)
    elif how == "too_small":
        monkeypatch.setattr(parse_mod, "_shared_memory", lambda path: mmap.mmap(-1, 64))
    unpacked = []
    real = parse_mod._from_shared
    monkeypatch.setattr(parse_mod, "_from_shared", lambda payload, shared: unpacked.append(1) or real(payload, shared))
    _, b = read_traces(WILD_C, WILD_PY)
    assert len(unpacked) == (1 if how == "shared" else 0)
    _same_trace(b, read_trace(WILD_PY))


def test_columns_from_the_shared_mapping_are_read_only():
    import mmap

    trace = read_trace(WILD_PY)
    shared = mmap.mmap(-1, 1 << 20)
    back = parse_mod._from_shared(parse_mod._to_shared(trace, shared), shared)
    _same_trace(back, trace)
    with pytest.raises(ValueError):
        back.columns().values[0] = 1.0
