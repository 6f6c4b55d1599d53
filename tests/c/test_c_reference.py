"""The C reference (simulator/c/nbref.c): closed-form physics checks on its traces, agreement of trace
and image, region dumps, the phi=0 carry-over emulation, and one-line errors with exit code 2."""

from __future__ import annotations

import math
import re
import subprocess

import numpy as np
import pytest

SEED = ["-lambda", "1", "-cell", "100", "100", "100", "90", "90", "90", "-Na", "3", "-Nb", "4", "-Nc", "5",
        "-default_F", "10", "-distance", "100", "-pixel", "0.1", "-oversample", "1"]
SMALL = SEED + ["-detpixels", "48"]


def taps(stdout: str) -> list[dict[str, list[float]]]:
    """Per traced pixel: tap name -> values of its last occurrence (enough for one-block pixels)."""
    pixels: list[dict[str, list[float]]] = []
    for line in stdout.splitlines():
        if line.startswith("TRACE_CONFIG:"):
            pixels.append({})
        elif line.startswith("TRACE_C: ") and pixels:
            name, *vals = line[len("TRACE_C: "):].split()
            pixels[-1][name] = [float(v) for v in vals]
    return pixels


def setup_values(stdout: str) -> dict[str, str]:
    return dict(ln[len("TRACE_C:"):].split("=", 1) for ln in stdout.splitlines()
                if ln.startswith("TRACE_C:") and "=" in ln.split()[0])


def ok(res):
    assert res.returncode == 0, res.stderr
    return res


# --- closed-form physics -------------------------------------------------------------------

def test_flatt_at_integer_hkl_is_na_nb_nc_and_omega_is_pixel2_over_distance2(run_ref):
    # MOSFLM puts the beam at Xbeam + px/2 along slow: Xbeam = 2.0 mm is the centre of pixel 20, so the
    # direct-beam pixel sees q = 0 exactly, i.e. the integer reflection (0, 0, 0).
    out = ok(run_ref(*SMALL, "-Xbeam", "2.0", "-Ybeam", "2.0", "-trace_pixel", "20", "20")).stdout
    (t,) = taps(out)
    assert t["hkl_frac"] == [0.0, 0.0, 0.0]
    assert t["F_latt_a"] == [3.0] and t["F_latt_b"] == [4.0] and t["F_latt_c"] == [5.0]
    assert t["F_latt"] == [60.0]
    pixel, distance = 0.1e-3, 0.1
    assert t["R_distance_meters"][0] == pytest.approx(distance, rel=1e-15)
    assert t["omega_pixel"][0] == pytest.approx(pixel**2 / distance**2, rel=1e-14)
    assert t["obliquity_factor"] == [1.0]


def test_flatt_near_a_bragg_peak_follows_the_grating_function(run_ref, tmp_path):
    # (0 1 0) of a 100 A cell at 1 A, 100 mm: about 10 pixels from the beam. Dump a strip, take the
    # pixel nearest the reflection and check F_latt against sin(N pi h)/sin(pi h) by hand.
    dump = tmp_path / "strip.npz"
    ok(run_ref(*SMALL, "-trace_roi", "24", "25", "0", "47", "-trace_dump", dump))
    with np.load(dump) as z:
        hkl, flatt = z["hkl_frac"], z["F_latt"]
    dist = np.abs(hkl - np.round(hkl)).sum(axis=-1) + (np.abs(np.round(hkl)).sum(axis=-1) == 0)
    s, f = np.unravel_index(np.argmin(dist), dist.shape)
    h = hkl[s, f]
    assert np.abs(np.round(h)).sum() == 1 and np.abs(h - np.round(h)).max() <= 0.051  # half a pixel
    by_hand = np.prod([math.sin(n * math.pi * x) / math.sin(math.pi * x) for n, x in zip((3, 4, 5), h)])
    assert flatt[s, f] == pytest.approx(by_hand, rel=1e-12)
    # within 0.05 of the node each factor keeps > 0.9 of N: the spot really is there
    assert abs(flatt[s, f]) > 0.9**3 * 60


@pytest.mark.parametrize("conv", ["mosflm", "denzo", "adxv", "xds", "dials"])
def test_pix0_per_convention_by_hand(run_ref, conv):
    n, px, d = 48, 0.1e-3, 0.1
    size = n * px
    by_hand = {
        # MOSFLM: beam at (size + px)/2 + px/2 on both axes; f = +z, s = -y, beam = +x
        "mosflm": (d, (size + px) / 2 + px / 2, -((size + px) / 2 + px / 2)),
        "denzo": (d, (size + px) / 2, -(size + px) / 2),
        # ADXV: f = +x, s = -y, beam = +z; Sbeam = size - (size - px)/2
        "adxv": (-(size + px) / 2, size - (size - px) / 2, d),
        # XDS/DIALS: sample pivot about the detector centre; f = +x, s = +y, normal = +z
        "xds": (-size / 2, -size / 2, d),
        "dials": (-size / 2, -size / 2, d),
    }[conv]
    out = ok(run_ref(*SMALL, f"-{conv}", "-trace_pixel", "0", "0")).stdout
    assert setup_values(out)["detector_convention"] == conv.upper()
    (t,) = taps(out)
    np.testing.assert_allclose(t["pix0_vector_meters"], by_hand, rtol=1e-13, atol=1e-18)
    # pixel (0, 0) centre is half a pixel along fast and slow from pix0
    pos = np.array(t["pix0_vector_meters"]) + 0.5 * px * (np.array(t["fdet_vec"]) + np.array(t["sdet_vec"]))
    np.testing.assert_allclose(t["pixel_pos_meters"], pos, rtol=1e-13, atol=1e-18)


def test_intensity_is_linear_in_fluence(run_ref):
    one = taps(ok(run_ref(*SMALL, "-trace_pixel", "30", "17")).stdout)[0]
    ten = taps(ok(run_ref(*SMALL, "-fluence", str(10 * 1.25932015286227e29), "-trace_pixel", "30", "17")).stdout)[0]
    assert ten["I_pixel_final"][0] == pytest.approx(10 * one["I_pixel_final"][0] * 1.25932015286227e29
                                                    / ten["fluence_photons_per_m2"][0] * 10, rel=1e-12)


# --- trace and image agree ---------------------------------------------------------------------

PIXELS = [(20, 30), (0, 0), (47, 47), (9, 41)]


def _trace_args():
    return [a for s, f in PIXELS for a in ("-trace_pixel", str(s), str(f))]


def test_float_image_size_and_values_equal_the_traces(run_ref, tmp_path):
    img_path = tmp_path / "img.bin"
    out = ok(run_ref(*SMALL, "-floatfile", img_path, *_trace_args())).stdout
    img = np.fromfile(img_path, dtype="<f4")
    assert img_path.stat().st_size == 48 * 48 * 4 and img.size == 48 * 48
    traced = taps(out)
    assert len(traced) == len(PIXELS)
    for (s, f), t in zip(PIXELS, traced):
        assert float(img[s * 48 + f]) == t["floatimage_accumulated"][0]
        assert np.float32(t["I_pixel_final"][0]) == img[s * 48 + f]
    # tracing alone computes the same numbers as the full-frame pass
    alone = taps(ok(run_ref(*SMALL, *_trace_args())).stdout)
    assert [t["I_pixel_final"] for t in alone] == [t["I_pixel_final"] for t in traced]
    assert not list(tmp_path.glob("*.img")) and not (tmp_path / "Fdump.bin").exists()


def test_tracing_one_pixel_does_not_render_the_frame(run_ref):
    # a 40000^2 frame would take minutes and 6 GB; one traced pixel takes milliseconds
    res = ok(run_ref(*SEED, "-detpixels", "40000", "-trace_pixel", "20000", "20000", timeout=30))
    assert len(taps(res.stdout)) == 1


def test_oversample_prints_one_block_per_subpixel(run_ref):
    out = ok(run_ref(*SMALL[:-2], "-oversample", "2", "-trace_pixel", "5", "6")).stdout
    body = out.split("TRACE_CONFIG:")[1]
    assert body.count("TRACE_C: pix0_vector_meters") == 4
    assert body.count("TRACE_C: I_pixel_final") == 1
    assert taps(out)[0]["steps"] == [4.0]


def test_region_dump_matches_the_image(run_ref, tmp_path):
    dump, img_path = tmp_path / "taps.npz", tmp_path / "img.bin"
    ok(run_ref(*SMALL, "-floatfile", img_path, "-trace_roi", "10", "14", "3", "5", "-trace_dump", dump))
    img = np.fromfile(img_path, dtype="<f4").reshape(48, 48)
    with np.load(dump) as z:
        assert z["roi"].tolist() == [10, 14, 3, 5]
        assert z["I_pixel_final"].shape == (3, 5) and z["pixel_pos_meters"].shape == (3, 5, 3)
        np.testing.assert_array_equal(z["floatimage_accumulated"], img[3:6, 10:15].astype(np.float64))
        assert z["meta_json"].dtype == np.uint8


def test_loop_lines_for_phi_mosaic_and_sources(run_ref):
    out = ok(run_ref(*SMALL, "-phi", "1", "-osc", "2", "-phisteps", "3", "-mosaic", "0.5", "-mosaic_domains", "4",
                     "-dispersion", "2", "-dispsteps", "2", "-trace_pixel", "20", "30")).stdout
    phi = [ln for ln in out.splitlines() if ln.startswith("TRACE_C_PHI ")]
    mos = [ln for ln in out.splitlines() if ln.startswith("TRACE_C_MOS ")]
    src = [ln for ln in out.splitlines() if ln.startswith("TRACE_C_SOURCE ")]
    assert [re.search(r"phi_tic=(\d+)", ln).group(1) for ln in phi] == ["0", "1", "2"]
    assert [re.search(r"mos_tic=(\d+)", ln).group(1) for ln in mos] == ["0", "1", "2", "3"]
    assert [re.search(r"source=(\d+)", ln).group(1) for ln in src] == ["0", "1"]
    assert float(re.search(r"phi_deg=(\S+)", phi[1]).group(1)) == pytest.approx(1 + 2 / 3, rel=1e-14)


# --- the phi = 0 carry-over of the original, on request ------------------------------------------

CARRY = SMALL + ["-phi", "0", "-osc", "3", "-phisteps", "3"]


def _phi_lines(out):
    return {int(re.search(r"phi_tic=(\d+)", ln).group(1)): ln for ln in out.splitlines()
            if ln.startswith("TRACE_C_PHI ")}


def test_carryover_changes_only_phi_step_zero(run_ref):
    fixed = _phi_lines(ok(run_ref(*CARRY, "-trace_pixel", "30", "17")).stdout)
    carried = _phi_lines(ok(run_ref(*CARRY, "-emulate_phi0_carryover", "-trace_pixel", "30", "17")).stdout)
    assert fixed[0] != carried[0]
    assert fixed[1] == carried[1] and fixed[2] == carried[2]


def test_carryover_trace_alone_equals_its_full_frame(run_ref, tmp_path):
    img_path = tmp_path / "img.bin"
    ok(run_ref(*CARRY, "-emulate_phi0_carryover", "-floatfile", img_path))
    img = np.fromfile(img_path, dtype="<f4")
    for s, f in [(30, 17), (0, 0)]:
        t = taps(ok(run_ref(*CARRY, "-emulate_phi0_carryover", "-trace_pixel", s, f)).stdout)[0]
        assert np.float32(t["I_pixel_final"][0]) == img[s * 48 + f]


# --- files -------------------------------------------------------------------------------------

def test_hkl_file_is_read_and_named_in_the_setup_block(run_ref, tmp_path):
    hkl = tmp_path / "f.hkl"
    hkl.write_text("0 0 0 7\n0 1 0 123.5\n\n-1 0 0 3\n")
    out = ok(run_ref(*SMALL, "-hkl", hkl, "-trace_pixel", "20", "20", "-Xbeam", "2.0", "-Ybeam", "2.0")).stdout
    assert setup_values(out)["structure_factors"] == f"file:{hkl} entries:3"
    assert taps(out)[0]["F_cell"] == [7.0]


def test_int_image_is_smv_with_a_512_byte_header(run_ref, tmp_path):
    path = tmp_path / "img.smv"
    ok(run_ref(*SMALL, "-intfile", path))
    raw = path.read_bytes()
    assert len(raw) == 512 + 2 * 48 * 48
    assert raw.startswith(b"{\nHEADER_BYTES=512;\nDIM=2;\n") and b"SIZE1=48;\nSIZE2=48;\n" in raw[:512]
    data = np.frombuffer(raw[512:], dtype="<u2")
    assert data.max() == 55000 + 40  # autoscaled to 55000 plus the ADC offset


# --- bad input: one line, exit code 2 ----------------------------------------------------------

BAD = [
    (["-distanse", "100"], r"argv\[\d+\]: unknown flag '-distanse'"),
    (["-distance"], r"-distance needs a number, got nothing"),
    (["-distance", "abc"], r"-distance needs a number, got 'abc'"),
    (["-detpixels", "4.5"], r"-detpixels needs an integer, got '4.5'"),
    (["-misset", "random"], r"-misset random is not supported"),
    (["-trace_pixel", "48", "0"], r"-trace_pixel 48 0 is outside the 48 x 48"),
    (["-trace_roi", "5", "2", "0", "1"], r"-trace_roi 5 2 0 1 is not inside the detector"),
    (["-pivot", "middle"], r"-pivot needs 'beam' or 'sample'"),
    (["stray"], r"unexpected argument 'stray'"),
]


@pytest.mark.parametrize("extra,pattern", BAD, ids=[b[0][0] for b in BAD])
def test_bad_flags_exit_2_with_one_line(run_ref, extra, pattern):
    res = run_ref(*SMALL, *extra)
    assert res.returncode == 2
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("nbref: error: ") and re.search(pattern, lines[0]) and "(hint: " in lines[0]


# Values physics.md gives no rule for: each must be refused before anything is written. Every case asks for
# all four image files and a region dump, so "nothing written" is checked for each kind of output.
OUTPUTS = ["-floatfile", "f.bin", "-intfile", "i.img", "-noisefile", "n.img", "-pgmfile", "p.pgm",
           "-trace_roi", "0", "1", "0", "1", "-trace_dump", "t.npz"]
BAD_VALUES = [
    ("detpixels-negative", ["-detpixels", "-5"], r"^-detpixels: pixel count must be >= 1, got -5"),
    ("detpixels-zero", ["-detpixels", "0"], r"^-detpixels: pixel count must be >= 1, got 0"),
    ("detpixels_f-zero", ["-detpixels_f", "0"], r"^-detpixels_f: pixel count must be >= 1, got 0"),
    ("detpixels_y-negative", ["-detpixels_y", "-2"], r"^-detpixels_y: pixel count must be >= 1, got -2"),
    ("detpixels-huge", ["-detpixels", "2000000000"], r"^-detpixels: a 2000000000 x 2000000000 pixel image needs "
                                                     r"\S+ GB, more than the \S+ GB of memory here"),
    ("detsize-overflows-int", ["-detsize", "1e300"], r"^-detsize: 1e\+300 mm holds 1e\+301 pixels of 0.1 mm per side"),
    ("detsize-zero", ["-detsize", "0"], r"^-detsize: 0 mm holds no pixel"),
    ("pixel-zero", ["-pixel", "0"], r"^-pixel: must be > 0 mm, got 0"),
    ("pixel-negative", ["-pixel_size", "-0.1"], r"^-pixel_size: must be > 0 mm, got -0.1"),
    ("lambda-zero", ["-lambda", "0"], r"^-lambda: must be > 0 Angstrom, got 0"),
    ("lambda-negative", ["-wave", "-1"], r"^-wave: must be > 0 Angstrom, got -1"),
    ("lambda-inf", ["-lambda", "inf"], r"^-lambda needs a number, got 'inf'"),
    ("lambda-nan", ["-lambda", "nan"], r"^-lambda needs a number, got 'nan'"),
    ("energy-zero", ["-energy", "0"], r"^-energy: must be > 0 eV, got 0"),
    ("distance-zero", ["-distance", "0"], r"^-distance: must be > 0 mm, got 0 \(hint: .*-close_distance"),
    ("distance-negative", ["-distance", "-5"], r"^-distance: must be > 0 mm, got -5"),
    ("close_distance-zero", ["-close_distance", "0"], r"^-close_distance: must be > 0 mm, got 0"),
    ("cell-negative-b", ["-cell", "100", "-50", "100", "90", "90", "90"], r"^-cell: value 2 is -50, lengths and "
                                                                          r"angles must be positive"),
    ("cell-zero-a", ["-cell", "0", "100", "100"], r"^-cell: a must be > 0 Angstrom, got 0"),
    ("cell-negative-a", ["-cell", "-100"], r"^-cell: value 1 is -100, lengths and angles must be positive"),
    ("roi-min-above-max", ["-roi", "5", "2", "0", "10"], r"^-roi: 5 2 0 10 has a min greater than its max"),
    ("roi-ymin-above-ymax", ["-roi", "0", "10", "7", "3"], r"^-roi: 0 10 7 3 has a min greater than its max"),
    ("roi-past-the-edge", ["-roi", "0", "48", "0", "47"], r"^-roi: 0 48 0 47 is not inside the 48 x 48"),
    ("roi-negative", ["-roi", "-1", "10", "0", "10"], r"^-roi: -1 10 0 10 is not inside the 48 x 48"),
    ("detector_thick-negative", ["-detector_thick", "-1"], r"^-detector_thick: must be >= 0 um, got -1"),
    ("beamsize-zero-with-flux", ["-flux", "1e12", "-beamsize", "0"], r"^-beamsize: 0 mm with -flux divides"),
    ("oversample-negative", ["-oversample", "-1"], r"^-oversample: subpixels per axis must be >= 0, got -1"),
]


@pytest.mark.parametrize("extra,pattern", [b[1:] for b in BAD_VALUES], ids=[b[0] for b in BAD_VALUES])
def test_nonsense_values_exit_2_with_one_line_and_write_nothing(run_ref, tmp_path, extra, pattern):
    # -detpixels would override -detsize, so those cases start from the detector-less SEED
    res = run_ref(*(SEED if "-detsize" in extra else SMALL), *OUTPUTS, *extra)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("nbref: error: ") and lines[0].endswith(")") and "(hint: " in lines[0]
    assert re.search(pattern, lines[0][len("nbref: error: "):]), lines[0]
    assert res.stdout == "" and list(tmp_path.iterdir()) == []


def test_a_bad_header_pixel_size_names_the_header(run_ref, tmp_path):
    _smv(tmp_path / "h.img", np.zeros((4, 4)), "PIXEL_SIZE=0;\n")
    res = run_ref("-cell", "100", "-default_F", "1", "-img", tmp_path / "h.img", "-floatfile", tmp_path / "a.bin")
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "-pixel: must be > 0 mm, got 0 (from the -img/-mask header)" in res.stderr
    assert not (tmp_path / "a.bin").exists()


# physics.md gives these a meaning, so they are not errors: N 0 -> 1, phisteps 0 -> 1, domains 0 -> auto,
# oversample 0 -> auto, angles 0 -> 90, b = c = 0 or missing -> a, distance 0 overridden by -close_distance
RULED = [
    ["-N", "0"], ["-phisteps", "0"], ["-mosaic_domains", "0"], ["-oversample", "0"],
    ["-cell", "100", "100", "100", "0", "0", "0"], ["-cell", "100", "0", "0"],
    ["-distance", "0", "-close_distance", "100"], ["-detector_thick", "0"], ["-beamsize", "0"],
    ["-roi", "0", "7", "0", "7"],
]


@pytest.mark.parametrize("extra", RULED, ids=[" ".join(r) for r in RULED])
def test_values_with_a_physics_rule_are_accepted(run_ref, tmp_path, extra):
    ok(run_ref(*SMALL, "-detpixels", "8", *extra, "-floatfile", tmp_path / "a.bin"))
    assert (tmp_path / "a.bin").stat().st_size == 8 * 8 * 4


def test_cell_shorthand_equals_the_full_cubic_cell(run_ref, tmp_path):
    assert SMALL[2:9] == ["-cell", "100", "100", "100", "90", "90", "90"]
    no_cell = SMALL[:2] + SMALL[9:]
    ok(run_ref(*SMALL, "-floatfile", tmp_path / "full.bin"))
    ok(run_ref(*no_cell, "-cell", "100", "-floatfile", tmp_path / "short.bin"))
    assert (tmp_path / "full.bin").read_bytes() == (tmp_path / "short.bin").read_bytes()


def _bad_file(run_ref, tmp_path, flag, text, *more):
    path = tmp_path / "input.txt"
    path.write_text(text)
    res = run_ref(*SMALL, *more, flag, path)
    assert res.returncode == 2
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nbref: error: {path}:"), res.stderr
    return lines[0]


def test_hkl_errors_name_file_and_line(run_ref, tmp_path):
    line = _bad_file(run_ref, tmp_path, "-hkl", "0 0 0 1\n1 0 0 2 9\n")
    assert ":2: expected 4 columns" in line
    line = _bad_file(run_ref, tmp_path, "-hkl", "0 0 0 1\n\n1.0 0 0 2\n")
    assert ":3:1: Miller index '1.0' is not an integer" in line
    line = _bad_file(run_ref, tmp_path, "-hkl", "h k l F\n")
    assert ":1:1: Miller index 'h'" in line


def test_mat_and_sourcefile_errors_name_file_and_line(run_ref, tmp_path):
    assert ":2: -mat expects numbers, got 'x'" in _bad_file(run_ref, tmp_path, "-mat", "0.01 0 0\n0 x 0\n")
    assert ":1: -mat needs 9 numbers, found 3" in _bad_file(run_ref, tmp_path, "-mat", "0.01 0 0\n")
    assert ":2:1: '#' is not a number" in _bad_file(run_ref, tmp_path, "-sourcefile", "-10 0 0\n# note\n")


def test_missing_input_file_and_missing_crystal(run_ref, tmp_path):
    res = run_ref(*SMALL, "-hkl", tmp_path / "nope.hkl")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "cannot open -hkl file" in res.stderr
    res = run_ref("-default_F", "1", "-detpixels", "8")
    assert res.returncode == 2 and res.stderr.strip() == (
        "nbref: error: no crystal given (hint: add -cell a b c alpha beta gamma, or -mat FILE)")
    res = run_ref("-cell", "100", "-detpixels", "8")
    assert res.returncode == 2 and "no structure factors" in res.stderr


def test_unwritable_output_is_an_error(run_ref, tmp_path):
    res = run_ref(*SMALL, "-floatfile", tmp_path / "no" / "such" / "dir.bin")
    assert res.returncode == 2 and "cannot create output file" in res.stderr.splitlines()[-1]


def test_skipped_term_prints_no_f_cell(run_ref):
    # TOPHAT outside the spot: F_latt == 0 skips the structure-factor lookup (physics.md 2.8)
    out = ok(run_ref("-tophat_spots", "-fudge", "0.5", "-lambda", "1", "-cell", "50", "50", "50", "90", "90", "90",
                     "-N", "5", "-default_F", "100", "-distance", "100", "-detpixels", "64", "-pixel", "0.1",
                     "-trace_pixel", "2", "2")).stdout
    t = taps(out)[0]
    # as in the real instrumented build, a skipped lookup prints no F_cell (and TOPHAT no F_latt tap)
    assert "F_cell" not in t and "F_latt" not in t and t["I_pixel_final"] == [0.0]


def test_tracing_compiled_out_gives_the_same_image(run_ref, c_compiler, tmp_path):
    from nbtrace.run.cbuild import source_dir

    plain = tmp_path / "nbref-plain"
    subprocess.run([c_compiler, "-O2", "-std=c99", str(source_dir() / "nbref.c"), "-o", str(plain), "-lm"],
                   check=True, capture_output=True)
    args = [*SMALL, "-mosaic", "0.3", "-mosaic_domains", "3", "-phi", "1", "-osc", "1", "-phisteps", "2"]
    ok(run_ref(*args, "-floatfile", tmp_path / "traced.bin", "-trace_pixel", "3", "4"))
    subprocess.run([str(plain), *args, "-floatfile", str(tmp_path / "plain.bin")], check=True, capture_output=True)
    assert (tmp_path / "plain.bin").read_bytes() == (tmp_path / "traced.bin").read_bytes()
    res = subprocess.run([str(plain), *args, "-trace_pixel", "3", "4"], capture_output=True, text=True)
    assert res.returncode == 2 and "built without tracing" in res.stderr


def test_pgm_is_p5_with_the_scale_in_its_header(run_ref, tmp_path):
    path = tmp_path / "img.pgm"
    ok(run_ref(*SMALL, "-pgmfile", path, "-pgmscale", "1000"))
    raw = path.read_bytes()
    header = b"P5\n48 48\n# pixels scaled by 1000\n255\n"
    assert raw.startswith(header) and len(raw) == len(header) + 48 * 48


def test_compatibility_flags_are_accepted(run_ref, tmp_path):
    path = tmp_path / "a.bin"
    ok(run_ref(*SMALL, "-floatfile", path, "-pixel_size", "0.1", "-density", "1.2", "-MW", "30000", "-coherent",
               "-stol", "x.stol", "-dump", "x.bin", "-noprogress", "-printout_pixel", "3", "4"))
    ok(run_ref(*SMALL, "-floatfile", tmp_path / "b.bin"))
    assert path.read_bytes() == (tmp_path / "b.bin").read_bytes()
    assert not (tmp_path / "x.bin").exists()


def _smv(path, data, extra):
    head = ("{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\nTYPE=unsigned_short;\n"
            f"SIZE1={data.shape[1]};\nSIZE2={data.shape[0]};\n{extra}}}\f").encode().ljust(512, b" ")
    path.write_bytes(head + data.astype("<u2").tobytes())


def test_mask_and_img_headers_set_geometry_and_skip_pixels(run_ref, tmp_path):
    mask = np.ones((30, 20), dtype=np.uint16)
    mask[5:8, 2:9] = 0
    _smv(tmp_path / "mask.img", mask, "PIXEL_SIZE=0.2;\n")
    _smv(tmp_path / "hdr.img", np.zeros((30, 20)), "PIXEL_SIZE=0.2;\nDISTANCE=80;\n")
    crystal = ["-cell", "100", "-N", "3", "-default_F", "100"]
    ok(run_ref(*crystal, "-mask", tmp_path / "mask.img", "-img", tmp_path / "hdr.img", "-floatfile", tmp_path / "a.bin"))
    img = np.fromfile(tmp_path / "a.bin", dtype="<f4").reshape(30, 20)  # SIZE2 slow x SIZE1 fast
    assert (img[5:8, 2:9] == 0).all() and (np.delete(img.ravel(), np.flatnonzero(mask.ravel() == 0)) > 0).all()
    # the header's DISTANCE = 80 mm is what -distance 80 gives; a later flag overrides the header
    ok(run_ref(*crystal, "-detpixels_f", "20", "-detpixels_s", "30", "-pixel", "0.2", "-distance", "80",
               "-floatfile", tmp_path / "b.bin"))
    b = np.fromfile(tmp_path / "b.bin", dtype="<f4").reshape(30, 20)
    assert np.array_equal(np.where(mask == 0, 0, b), img)
    ok(run_ref(*crystal, "-img", tmp_path / "hdr.img", "-distance", "90", "-floatfile", tmp_path / "c.bin"))
    assert (tmp_path / "c.bin").read_bytes() != (tmp_path / "b.bin").read_bytes()


def test_bad_smv_input_is_one_line(run_ref, tmp_path):
    (tmp_path / "x.img").write_bytes(b"P5\n" + b" " * 600)
    res = run_ref("-cell", "100", "-default_F", "1", "-img", tmp_path / "x.img")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not an SMV (ADSC) image" in res.stderr
    _smv(tmp_path / "m.img", np.ones((4, 4)), "")
    res = run_ref("-cell", "100", "-default_F", "1", "-mask", tmp_path / "m.img", "-detpixels", "8")
    assert res.returncode == 2 and "the mask is 4 x 4 pixels but the detector is 8 x 8" in res.stderr


def test_help_prints_usage_and_exits_0(run_ref):
    res = run_ref("-h")
    assert res.returncode == 0 and res.stdout.startswith("usage: nbref ") and res.stderr == ""


def test_source_removed_by_dmin_keeps_its_beam_taps_and_prints_nothing_after(run_ref):
    out = ok(run_ref("-water", "0.05", "-dmin", "30", "-lambda", "1", "-cell", "50", "50", "50", "90", "90", "90",
                     "-N", "5", "-default_F", "100", "-distance", "100", "-detpixels", "64", "-pixel", "0.1",
                     "-trace_pixel", "63", "7")).stdout
    t = taps(out)[0]
    assert t["incident_vec"] == [1.0, 0.0, 0.0] and t["lambda_meters"] == [1e-10]
    assert t["scattering_vec_A_inv"][1] < -1e8 and 0.99 < t["cos_2theta"][0] < 1
    # nothing after the dmin test ran for source 0, so the real build prints none of it
    for name in ("rot_a_angstroms", "hkl_frac", "hkl_rounded", "F_latt_a", "F_latt", "F_cell"):
        assert name not in t, name
    assert not any(t["polar"])
    assert t["I_pixel_final"] == [0.0]  # P stays 0: even the water background vanishes (physics.md 6)


def test_mat_file_is_divided_by_lambda_in_angstrom(run_ref, tmp_path):
    mat = tmp_path / "a.mat"
    mat.write_text(" 0.012 0 0\n 0 0.012 0\n 0 0 0.006\n")  # columns a*, b*, c* times lambda (1.2 A)
    assert SMALL[:3] == ["-lambda", "1", "-cell"]
    no_crystal = SMALL[9:]  # without "-lambda 1 -cell 100 100 100 90 90 90"
    t = taps(ok(run_ref(*no_crystal, "-lambda", "1.2", "-mat", mat, "-trace_pixel", "3", "3")).stdout)[0]
    np.testing.assert_allclose(t["rot_a_star_A_inv"], [0.01, 0, 0], rtol=1e-15, atol=1e-20)
    np.testing.assert_allclose(t["rot_c_star_A_inv"], [0, 0, 0.005], rtol=1e-15, atol=1e-20)
    np.testing.assert_allclose(t["rot_a_angstroms"], [100, 0, 0], rtol=1e-14, atol=1e-12)
    np.testing.assert_allclose(t["rot_c_angstroms"], [0, 0, 200], rtol=1e-14, atol=1e-12)


def test_sourcefile_wavelength_column_is_used(run_ref, tmp_path):
    src = tmp_path / "one.src"
    src.write_text("-10 0 0 1 1.1e-10\n")
    assert SMALL[:2] == ["-lambda", "1"]
    base = SMALL[2:]
    ok(run_ref(*base, "-sourcefile", src, "-floatfile", tmp_path / "a.bin"))
    ok(run_ref(*base, "-lambda", "1.1", "-floatfile", tmp_path / "b.bin"))
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()


def test_image_does_not_depend_on_the_thread_count(nbref, tmp_path):
    # phi0 = 0 with several steps is where the original depends on threads (incident 12)
    args = [str(nbref), *CARRY, "-mosaic", "0.2", "-mosaic_domains", "2"]
    for n in ("1", "2", "3"):
        subprocess.run([*args, "-floatfile", str(tmp_path / f"t{n}.bin")], check=True, capture_output=True,
                       env={"OMP_NUM_THREADS": n, "PATH": "/usr/bin:/bin"})
    assert (tmp_path / "t1.bin").read_bytes() == (tmp_path / "t2.bin").read_bytes() == (tmp_path / "t3.bin").read_bytes()
