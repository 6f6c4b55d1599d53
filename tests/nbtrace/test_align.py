"""align: every record of both traces is matched exactly once or listed as unmatched, by key."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings, strategies as st

from nbtrace.engine.align import align
from nbtrace.engine.model import SourceLoc, TapIndex, TapRecord, Trace
from nbtrace.engine.spec import parse_spec
from nbtrace.testing import make_trace

ROOT = Path(__file__).resolve().parents[2]

NAMES = ["pix0_vector_meters", "F_cell", "F_cell_interpolated", "hkl_frac", "steps", "k_frac"]
PIXELS = [None, (1, 2), (2, 1), (5, 5)]
LOOPS = [(), (("phi_tic", 0),), (("phi_tic", 1),)]

ALIAS_SPEC = parse_spec(
    """spec: t
taps:
  - {name: hkl_frac, shape: [3]}
  - {name: F_cell, aliases: {b: [F_cell_interpolated]}}
""",
    "<test>",
)


def _trace(entries, path) -> Trace:
    """Records with occurrences numbered as the parser does (per name, pixel, loop)."""
    seen: dict = {}
    recs = []
    for line, (name, pixel, loop, value) in enumerate(entries, 1):
        slot = (name, pixel, loop)
        occ = seen.get(slot, 0)
        seen[slot] = occ + 1
        recs.append(TapRecord(name, (value,), TapIndex(pixel, loop, occ), SourceLoc(path, line)))
    return Trace(path, tuple(recs))


entry = st.tuples(st.sampled_from(NAMES), st.sampled_from(PIXELS), st.sampled_from(LOOPS),
                  st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=150, deadline=None)
@given(st.lists(entry, max_size=40), st.lists(entry, max_size=40), st.booleans())
def test_every_record_lands_in_exactly_one_place(ea, eb, with_spec):
    a, b = _trace(ea, "a"), _trace(eb, "b")
    al = align(a, b, ALIAS_SPEC if with_spec else None)
    in_pairs_a = [int(i) for g in al.groups for i in g.ia]
    in_pairs_b = [int(i) for g in al.groups for i in g.ib]
    assert sorted(in_pairs_a + list(al.only_a)) == list(range(len(a.records)))
    assert sorted(in_pairs_b + list(al.only_b)) == list(range(len(b.records)))
    for g in al.groups:
        for i, j in zip(g.ia, g.ib):
            ra, rb = a.records[i], b.records[j]
            # pairs share canonical name and (pixel, loop); never matched by position alone
            assert al.canon_a[i] == al.canon_b[j] == g.tap
            assert (ra.index.pixel, ra.index.loop) == (rb.index.pixel, rb.index.loop)


def test_alias_pairs_port_name_with_reference_name():
    a = make_trace([("F_cell", 100.0)], pixel=(1, 1))
    b = make_trace([("F_cell_interpolated", 100.0)], pixel=(1, 1))
    al = align(a, b, ALIAS_SPEC)
    assert [(g.tap, len(g.ia)) for g in al.groups] == [("F_cell", 1)]
    assert not al.only_a and not al.only_b
    # without a spec, different names stay different taps
    al = align(a, b, None)
    assert al.groups == () and al.only_a == (0,) and al.only_b == (0,)


def test_repeats_align_by_occurrence_and_different_counts_pair_up_to_the_smaller():
    four = make_trace([("pixel_pos_meters", (0.1, 0.0, float(i))) for i in range(4)] + [("steps", 4)], pixel=(3, 3))
    also_four = make_trace([("pixel_pos_meters", (0.1, 0.0, float(i))) for i in range(4)] + [("steps", 4)], pixel=(3, 3))
    one = make_trace([("pixel_pos_meters", (0.1, 0.0, 0.0)), ("steps", 4)], pixel=(3, 3))
    al = align(four, also_four)
    g = next(g for g in al.groups if g.tap == "pixel_pos_meters")
    assert [int(i) for i in g.ia] == [0, 1, 2, 3] == [int(i) for i in g.ib]
    al = align(four, one)
    # compared occurrence by occurrence (issue 11): the first copy pairs, A's 3 extras do not
    assert [g.tap for g in al.groups] == ["pixel_pos_meters", "steps"]
    assert len(al.only_a) == 3 and len(al.only_b) == 0
    [cm] = al.count_mismatch
    assert (cm.tap, cm.pixel, cm.n_a, cm.n_b) == ("pixel_pos_meters", (3, 3), 4, 1)


def test_loop_taps_align_by_loop_index_not_line_order():
    a = make_trace([(("k_frac", {"phi_tic": 0}), 0.5), (("k_frac", {"phi_tic": 1}), 0.6)], pixel=(1, 1))
    b = make_trace([(("k_frac", {"phi_tic": 1}), 0.6), (("k_frac", {"phi_tic": 0}), 0.5)], pixel=(1, 1))
    al = align(a, b)
    [g] = al.groups
    assert g.loop == ("phi_tic",)
    for i, j in zip(g.ia, g.ib):
        assert a.records[i].values == b.records[j].values


def test_pixel_map_pairs_renamed_pixels():
    a = make_trace([("steps", 1)], pixel=(1, 2))
    b = make_trace([("steps", 1)], pixel=(2, 1))
    assert align(a, b).groups == ()
    al = align(a, b, pixel_map_b={(2, 1): (1, 2)})
    assert al.matched == 1
